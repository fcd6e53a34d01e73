"""
sensor_msgs/PointCloud2 from an N x 3 float32 array: the ~/obstacles points.

Fields x, y, z (FLOAT32, offsets 0, 4, 8), little-endian, one row (height 1), dense (no
NaN): the layout Nav2's ObstacleLayer and rviz read.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField


def points_msg(points: np.ndarray, stamp, frame_id: str) -> PointCloud2:
    """Return a PointCloud2 of N x 3 points (x, y, z) in frame_id, stamped with stamp."""
    points = np.ascontiguousarray(points, dtype="<f4").reshape(-1, 3)
    msg = PointCloud2()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = 1, int(points.shape[0])
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, n in enumerate("xyz")]
    msg.is_bigendian = False          # written little-endian ("<f4") on any host
    msg.point_step = 12
    msg.row_step = 12 * msg.width
    msg.is_dense = True
    data = array.array("B")
    data.frombytes(points.reshape(-1).view(np.uint8).data)   # one copy, as conversions.numpy_to_image
    msg.data = data
    return msg


def msg_points(msg: PointCloud2) -> np.ndarray:
    """Return the N x 3 float32 points of a PointCloud2 written by points_msg (for tests and tools)."""
    return np.frombuffer(bytes(msg.data), "<f4").reshape(msg.height * msg.width, 3)
