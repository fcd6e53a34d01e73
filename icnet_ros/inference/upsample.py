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
percent) are interpolated, from their cell's four corners gathered once per cell.  On a
KITTI frame (375x1242 from 193x640) that took 1.2 ms against 2.3 ms for the per-pixel
version before it and ~12 ms for resizing all the logits (2-core EPYC, 2026-12-01).
The drivable probability, when asked for, is computed at the network size and resized as
one channel.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


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
def _axis(n_out: int, n_in: int) -> tuple[np.ndarray, ...]:
    """
    Bilinear sampling along one axis, half-pixel centres (align_corners=False).

    Per output index: the weight of the second source index (the first is floor(src)).
    Per source index (a cell's first row / column): where its output run starts and how
    long it is (floor(src) is non-decreasing, so the outputs of one cell are a run; 0
    long when shrinking).
    """
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    start = np.searchsorted(i0, np.arange(n_in), side="left")
    count = np.searchsorted(i0, np.arange(n_in), side="right") - start
    return (src - i0).astype(np.float32), start, count


_CELL = np.ones((2, 2), np.uint8)


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
    wy, y_start, y_count = _axis(out_h, h)
    wx, x_start, x_count = _axis(out_w, w)
    # cell (i, j) spans network pixels (i, j) .. (i+1, j+1), edges repeated: one class when
    # its 2x2 max equals its min (OpenCV's dilate / erode, anchored at the cell's corner)
    hi = cv2.dilate(classes, _CELL, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(classes, _CELL, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    # a frame pixel's nearest network pixel is a corner of its cell: right for uniform cells
    out = cv2.resize(classes, (out_w, out_h), interpolation=cv2.INTER_NEAREST_EXACT)
    ci, cj = np.divmod(np.flatnonzero(hi != lo), w)    # mixed cells, a few percent
    ny, nx = y_count[ci], x_count[cj]
    n = ny * nx                                        # frame pixels in each mixed cell
    if not n.all():                                    # shrinking: cells no frame pixel falls in
        keep = n > 0
        ci, cj, ny, nx, n = ci[keep], cj[keep], ny[keep], nx[keep], n[keep]
    if len(n) == 0:
        return out
    # the frame pixels of every mixed cell, listed cell after cell
    cell = np.repeat(np.arange(len(n)), n)
    k = np.arange(len(cell)) - np.repeat(np.cumsum(n) - n, n)
    dy, dx = np.divmod(k, nx[cell])
    ys = y_start[ci][cell] + dy
    xs = x_start[cj][cell] + dx
    # the cell's four corners' logits, gathered once per cell, then spread to its pixels
    rows = logits.reshape(h * w, -1)
    i1, j1 = np.minimum(ci + 1, h - 1) * w, np.minimum(cj + 1, w - 1)
    top = rows.take(ci * w + cj, axis=0).take(cell, axis=0)
    fx, fy = wx[xs][:, None], wy[ys][:, None]
    top += (rows.take(ci * w + j1, axis=0).take(cell, axis=0) - top) * fx      # in place: few n x C temporaries
    bottom = rows.take(i1 + cj, axis=0).take(cell, axis=0)
    bottom += (rows.take(i1 + j1, axis=0).take(cell, axis=0) - bottom) * fx
    top += (bottom - top) * fy
    out[ys, xs] = top.argmax(1)
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
