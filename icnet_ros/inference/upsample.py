"""
The CPU engine's frame-size work: frames down to the network size, results back up.

No ROS.

``deploy.frame_logits`` resizes float logits (C channels) back to the frame and takes
the argmax there: at 375x1242 that was about a quarter of the shipped model's time on the
CPU.  Here the frame goes down as uint8 (OpenCV) and the class map comes back exactly as
``argmax(bilinear(logits))`` would give it, but computed only where it can differ from
the network-size argmax: a frame pixel's bilinear value mixes four network pixels, and
when all four have the same argmax class the mix has it too (a convex combination keeps
``l_c >= l_k``).  Only the frame pixels of mixed cells (next to a class border, a few
percent) are interpolated (``class_map``).  The drivable probability comes from the
network graph at the network size (``deploy.drivable_prob``) and is resized as one
channel (``probability_map``).

Coordinates: the half-pixel-centre convention of F.interpolate / cv2.resize
(align_corners=False), frame pixel ``x`` at network coordinate
``(x + 0.5) * w / W - 0.5`` (``frame_to_network``).  So a map sampled bilinearly at those
network coordinates (``sample_bilinear``) gives what the full-resolution map, itself a
bilinear resize, holds at the frame pixel: outputs that need values at a few points (the
ground grid) read the network-size maps instead of resizing them.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .class_map import class_map  # noqa: F401  (the class map up to the frame: class_map.py)


def resize_frames(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """
    uint8 H x W x 3 frames -> N x h x w x 3 at ``size`` (h, w): bilinear, as F.interpolate.

    Where the frame is an odd whole multiple of the network size along both axes
    (1920x1080 -> 640x360), every network pixel centre falls on a frame pixel centre, so
    bilinear is that pixel: OpenCV's exact nearest gives the same bytes in half the time
    (0.45 against 1.0 ms at 1080p on this project's 2-core VM).
    """
    h, w = size
    if frames[0].shape[:2] == (h, w):
        return frames[0][None] if len(frames) == 1 else np.stack(frames)
    H, W = frames[0].shape[:2]
    odd = H % h == 0 and W % w == 0 and (H // h) % 2 == 1 and (W // w) % 2 == 1
    how = cv2.INTER_NEAREST_EXACT if odd else cv2.INTER_LINEAR
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, f in enumerate(frames):
        cv2.resize(f, (w, h), dst=out[i], interpolation=how)
    return out


def probability_map(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """
    Return the h x w float32 drivable probability (in [0, 1]) resized to ``size`` (bilinear), at most 1.

    A bilinear mix of values in [0, 1] with non-negative weights is never below 0; rounding
    may leave it a hair above 1, which OpenCV's truncation takes back (0.18 against 0.39 ms
    for np.clip at 1080p).
    """
    h, w = size
    if prob.shape != (h, w):
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.threshold(prob, 1.0, 1.0, cv2.THRESH_TRUNC, dst=prob)[1]


def drivable_probability(logits: np.ndarray, drivable_ids, size: tuple[int, int]) -> np.ndarray:
    """
    Return the H x W float32 drivable probability: softmax at the network size (h x w x C), summed, resized.

    The reference definition in NumPy; the engine gets the same numbers from the network
    graph (``deploy.drivable_prob``), and uses this only for a graph without that output
    (a model exported before it had one).
    """
    z = logits - logits.max(-1, keepdims=True)
    np.exp(z, out=z)
    prob = np.clip(z[..., list(drivable_ids)].sum(-1) / z.sum(-1), 0.0, 1.0)
    return probability_map(prob.astype(np.float32, copy=False), size)


@lru_cache(maxsize=16)
def _scale(frame_size: tuple[int, int], net_size: tuple[int, int]) -> np.ndarray:
    (H, W), (h, w) = frame_size, net_size
    sx, sy = w / W, h / H
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    S.setflags(write=False)
    return S


def frame_to_network(frame_size: tuple[int, int], net_size: tuple[int, int]) -> np.ndarray:
    """
    Return the 3 x 3 float64 map from frame pixel coordinates to network-map pixel coordinates.

    frame_size (H, W), net_size (h, w); pixel centres at integers, half-pixel-centre
    convention: ``x_net = (x + 0.5) * w / W - 0.5``.  A ground -> frame homography H
    becomes ``frame_to_network(...) @ H`` for the network-size maps.
    """
    for name, (a, b) in (("frame_size", frame_size), ("net_size", net_size)):
        if int(a) <= 0 or int(b) <= 0:
            raise ValueError(f"{name} must be two positive sides (H, W), got {a}x{b}")
    return _scale((int(frame_size[0]), int(frame_size[1])), (int(net_size[0]), int(net_size[1]))).copy()


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """
    Return an h x w (float) map sampled bilinearly at pixel coordinates (x, y), edges repeated.

    As F.interpolate / cv2.resize sample (half-pixel centres, coordinates clamped to the
    map), so at ``frame_to_network`` points it gives what the bilinear resize to the
    frame holds at the frame pixel.  Points beyond the map take the nearest edge value;
    callers mask what they do not see.
    """
    h, w = image.shape[:2]
    x = np.clip(np.asarray(x, np.float64), 0.0, w - 1.0)
    y = np.clip(np.asarray(y, np.float64), 0.0, h - 1.0)
    x0, y0 = np.minimum(x.astype(np.intp), w - 1), np.minimum(y.astype(np.intp), h - 1)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0).astype(np.float32), (y - y0).astype(np.float32)
    flat = image.reshape(h * w)
    top = flat[y0 * w + x0]
    top = top + (flat[y0 * w + x1] - top) * fx
    bottom = flat[y1 * w + x0]
    bottom = bottom + (flat[y1 * w + x1] - bottom) * fx
    return top + (bottom - top) * fy
