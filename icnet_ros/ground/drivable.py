"""
From the network's drivable probability to the drivable area a planner gets.

No ROS.  The engine decides each pixel (arg-max class, or ``drivable_threshold`` on the
summed drivable probability); here the mask can be cut to the area connected to the
vehicle, and the probability becomes an 8-bit confidence image.
"""

from __future__ import annotations

import cv2
import numpy as np

# Where the vehicle stands in a forward camera's image: the bottom rows, middle half.
SEED_ROWS = 0.03          # bottom 3 % of the rows (at least one)
SEED_COLUMNS = (0.25, 0.75)


def connected_to_vehicle(drivable: np.ndarray, ego: np.ndarray | None = None) -> np.ndarray:
    """
    Keep only the drivable pixels connected (8-neighbour) to the bottom centre of the image.

    Islands beyond a barrier, a verge or parked cars, which the vehicle cannot reach
    without crossing something else, are dropped.  Returns a new H x W bool mask.  With an
    ego mask (the robot's own body, icnet_ros/ego_mask.py), the body counts as connected
    ground and is then left out: the road starts where the hood ends.
    """
    if ego is not None:
        return connected_to_vehicle(drivable | ego) & ~ego
    h, w = drivable.shape
    count, labels = cv2.connectedComponents(drivable.view(np.uint8), connectivity=8)
    if count <= 1:
        return drivable.copy()
    rows = max(1, int(round(h * SEED_ROWS)))
    left, right = int(w * SEED_COLUMNS[0]), max(int(w * SEED_COLUMNS[1]), int(w * SEED_COLUMNS[0]) + 1)
    seeds = np.unique(labels[h - rows:, left:right])
    seeds = seeds[seeds != 0]
    if len(seeds) == 0:
        return np.zeros_like(drivable)
    keep = np.zeros(count, bool)
    keep[seeds] = True
    return keep[labels]


def confidence_image(prob: np.ndarray) -> np.ndarray:
    """Return a drivable probability (H x W float in [0, 1]) as mono8: 0..255, rounded."""
    return (np.clip(prob, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
