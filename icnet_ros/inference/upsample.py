"""
The CPU engine's frame-size work: frames down to the network size, results back up.

No ROS.

``deploy.frame_logits`` resizes float logits (C channels) back to the frame and takes
the argmax there: at 375x1242 that was about a quarter of the shipped model's time on the
CPU.  Here the frame goes down as uint8 (OpenCV) and the class map comes back exactly as
``argmax(bilinear(logits))`` would give it, but computed only where it can differ from
the network-size argmax: a frame pixel's bilinear value mixes four network pixels, and
when all four have the same argmax class the mix has it too (a convex combination keeps
``l_c >= l_k``).  Only pixels next to a class border (a few percent) are interpolated.
The drivable probability, when asked for, is computed at the network size and resized as
one channel.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

BORDER = 255   # "mixed cell" marker in the class map; never a class id (classes < 255)


def resize_frames(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """uint8 H x W x 3 frames -> N x h x w x 3 at ``size`` (h, w): bilinear, as F.interpolate."""
    h, w = size
    if frames[0].shape[:2] == (h, w):
        return frames[0][None] if len(frames) == 1 else np.stack(frames)
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, f in enumerate(frames):
        cv2.resize(f, (w, h), dst=out[i], interpolation=cv2.INTER_LINEAR)
    return out


@lru_cache(maxsize=16)
def _axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 and weight of i1 per output index: bilinear, half-pixel centres (align_corners=False)."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def class_map(classes: np.ndarray, logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """
    Return the H x W uint8 class map of ``argmax(bilinear(logits, size))``.

    classes: h x w uint8, the argmax of logits (h x w x C float32, channels last: one
    pixel's logits side by side) at the network size; logits may be None when the size
    is the frame's (the classes are then the answer).
    """
    h, w = classes.shape
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return classes
    y0, y1, wy = _axis(out_h, h)
    x0, x1, wx = _axis(out_w, w)
    # a cell (i, j) .. (i+1, j+1) of one class keeps it; a mixed cell is marked BORDER
    pad = np.pad(classes, ((0, 1), (0, 1)), mode="edge")
    corner = pad[:-1, :-1]
    same = (corner == pad[:-1, 1:]) & (corner == pad[1:, :-1]) & (corner == pad[1:, 1:])
    code = np.where(same, corner, BORDER).astype(np.uint8)
    out = code.take(y0, axis=0).take(x0, axis=1)
    flat = out.reshape(-1)
    where = np.flatnonzero(flat == BORDER)
    if len(where):
        ys, xs = np.divmod(where, out_w)
        rows = logits.reshape(h * w, -1)
        a0, a1 = y0[ys] * w, y1[ys] * w
        b0, b1 = x0[xs], x1[xs]
        fx, fy = wx[xs][:, None], wy[ys][:, None]
        top = rows[a0 + b0]
        top += (rows[a0 + b1] - top) * fx      # in place: few temporaries of n x C
        bottom = rows[a1 + b0]
        bottom += (rows[a1 + b1] - bottom) * fx
        top += (bottom - top) * fy
        flat[where] = top.argmax(1)
    return out


def drivable_probability(logits: np.ndarray, drivable_ids, size: tuple[int, int]) -> np.ndarray:
    """Return the H x W float32 drivable probability: softmax at the network size (h x w x C), summed, resized."""
    z = logits - logits.max(-1, keepdims=True)
    np.exp(z, out=z)
    prob = z[..., list(drivable_ids)].sum(-1) / z.sum(-1)
    h, w = size
    if prob.shape != (h, w):
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(prob, 0.0, 1.0, out=prob)
