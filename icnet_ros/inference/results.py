"""
What the engine returns per frame (``Result``), and how the maps of one batch become results.

No ROS.  Every result has the network-size maps (``net_*``): outputs that read the
maps at a few points, such as the ground grid through ``upsample.frame_to_network``,
need no more.  The full-resolution maps (``classes``, ``drivable``, ``drivable_prob``)
are there when the call asked for them (``full_size``, the default): the masks and the
overlay a camera-sized image is published from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Result:
    """
    One frame's maps: at the frame's size (H x W) when asked for, and at the network's (h x w) always.

    The drivable decision is the arg-max class's (a drivable class) or, with a
    drivable_threshold above 0, the drivable probability reaching it, at either size.
    When the frame is at the network size the two sizes share their arrays.
    """

    classes: np.ndarray | None                   # H x W uint8 class ids; None when full_size=False
    drivable: np.ndarray | None                  # H x W bool; None when full_size=False
    drivable_prob: np.ndarray | None = None      # H x W float32 in [0, 1]: asked for (probabilities or a threshold)
    net_classes: np.ndarray | None = None        # h x w uint8 at the network size, always
    net_drivable: np.ndarray | None = None       # h x w bool, always
    net_prob: np.ndarray | None = None           # h x w float32 in [0, 1] when asked for, else None
    frame_size: tuple = ()                       # (H, W)


class Drivable:
    """The drivable decision from a class map: one compare for one drivable class, else a 256-entry lookup."""

    def __init__(self, drivable_ids):
        self.ids = sorted(int(i) for i in drivable_ids)
        self.lut = np.zeros(256, dtype=bool)
        self.lut[self.ids] = True

    def __call__(self, classes: np.ndarray) -> np.ndarray:
        if len(self.ids) == 1:
            return classes == self.ids[0]          # 50x faster than the lookup
        return self.lut[classes]


def assemble(is_drivable: Drivable, small: np.ndarray, prob: np.ndarray | None, frame_size: tuple[int, int],
             threshold: float, full_classes=None, full_prob=None) -> list[Result]:
    """
    Return one Result per frame of a batch of one frame size.

    small: N x h x w class maps at the network size; prob: N x h x w drivable probability
    or None; full_classes / full_prob: i -> the frame's H x W class map / probability
    (None: full_size=False, or no probability).
    """
    out = []
    for i in range(len(small)):
        net_prob = None if prob is None else np.clip(prob[i], 0.0, 1.0, out=prob[i])
        net_drivable = net_prob >= threshold if threshold > 0 else is_drivable(small[i])
        r = Result(None, None, None, small[i], net_drivable, net_prob, tuple(frame_size))
        if full_classes is not None:
            if small.shape[1:] == tuple(frame_size):            # the frame ran at its own size
                r.classes, r.drivable, r.drivable_prob = small[i], net_drivable, net_prob
            else:
                r.classes = full_classes(i)
                r.drivable_prob = None if full_prob is None else full_prob(i)
                r.drivable = r.drivable_prob >= threshold if threshold > 0 else is_drivable(r.classes)
        out.append(r)
    return out
