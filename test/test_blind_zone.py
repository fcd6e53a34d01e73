"""The camera's blind zone and a pose that sees no ground (no ROS): icnet_ros/ground/blind_zone.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from icnet_ros.ground import blind_zone as B, geometry as G

CALIB = Path(__file__).parent / "data/kitti_road/calib/um_000000.txt"
# docs/robot.md's example: 1.5 m up, 1.2 m ahead of the base, pitched down 0.1 rad, 60 deg across 640 px
F = 320 / np.tan(np.radians(30))
K = np.array([[F, 0.0, 319.5], [0.0, F, 239.5], [0.0, 0.0, 1.0]])
SIZE = (480, 640)
POSE = G.CameraPose.from_parameters(1.5, 0.1, x=1.2)


def ground_of_pixel(u: float, v: float, pose=POSE, k=K) -> np.ndarray:
    """Base-frame (X, Y) of a pixel's ground point, by hand: the ray through it meets Z = 0."""
    ray = pose.rotation @ np.linalg.solve(k, [u, v, 1.0])
    return pose.position[:2] + (-pose.position[2] / ray[2]) * ray[:2]


def test_example_pose_by_hand():
    zone = B.blind_zone(K, POSE, SIZE)
    # straight ahead: the bottom edge of the image (v = 479.5) is atan(240 / F) below the axis, plus the pitch
    ahead = 1.5 / np.tan(np.arctan(240 / F) + 0.1)
    assert zone.ahead == pytest.approx(ahead, abs=1e-9) == pytest.approx(2.690, abs=1e-3)
    assert zone.nearest == pytest.approx(ahead, abs=1e-9)
    # a ray at the edge of the view crosses more unseen ground: the bottom corner's ground point
    corner = ground_of_pixel(-0.5, 479.5)
    assert zone.distance == pytest.approx(np.hypot(corner[0] - 1.2, corner[1]), abs=1e-9)
    assert zone.distance == pytest.approx(3.147, abs=1e-3)
    # the "2.75 m": the first cell of the node's default grid (0.1 m) seen straight ahead
    projector = G.GroundProjector(G.pose_homography(K, POSE), G.GridSpec(), SIZE)
    row = projector.visible[int(round((0.05 - G.GridSpec().y_min) / 0.1))]
    first = G.GridSpec().x_min + (np.argmax(row) + 0.5) * 0.1
    assert first - 1.2 == pytest.approx(2.75, abs=1e-9)
    assert zone.ahead <= first - 1.2 < zone.ahead + 0.1


def test_distance_is_the_farthest_nearest_seen_ground_over_every_direction():
    # independent of the edge: sample the ground finely, keep what the camera sees, and per direction
    # from the ground point take the nearest seen cell; the largest of those is the blind zone
    spec = G.GridSpec(1.2, 9.2, -5.0, 5.0, 0.01)
    seen = G.GroundProjector(G.pose_homography(K, POSE), spec, SIZE).visible
    X, Y = spec.cell_centers()
    r, a = np.hypot(X - 1.2, Y)[seen], np.arctan2(Y, X - 1.2)[seen]
    bins = np.round(a / np.radians(0.5)).astype(int)
    nearest = np.full(bins.max() - bins.min() + 1, np.inf)
    np.minimum.at(nearest, bins - bins.min(), r)
    inner = nearest[1:-1]                  # the end bins are only partly inside the view
    zone = B.blind_zone(K, POSE, SIZE)
    assert inner.max() == pytest.approx(zone.distance, abs=0.03)
    assert inner.min() == pytest.approx(zone.nearest, abs=0.02)


def test_ego_mask_rows_push_the_blind_zone_out():
    ego = np.zeros(SIZE, bool)
    ego[-58:] = True                                       # bottom:0.12 of 480 rows
    zone = B.blind_zone(K, POSE, SIZE, ego)
    assert zone.ahead == pytest.approx(1.5 / np.tan(np.arctan((421.5 - 239.5) / F) + 0.1), abs=1e-9)
    # a hood only in the middle third: the corners still see the ground from the image's edge
    hood = np.zeros(SIZE, bool)
    hood[-100:, 213:427] = True
    zone2 = B.blind_zone(K, POSE, SIZE, hood)
    assert zone2.ahead == pytest.approx(1.5 / np.tan(np.arctan((379.5 - 239.5) / F) + 0.1), abs=1e-9)
    beside = ground_of_pixel(426.5, 479.5)                 # the first column right of the hood, bottom edge
    assert zone2.nearest == pytest.approx(np.hypot(beside[0] - 1.2, beside[1]), abs=1e-9)
    top = ground_of_pixel(212.5, 379.5)                    # the hood's top corner: rays over it cross more
    assert zone2.distance == pytest.approx(np.hypot(top[0] - 1.2, top[1]), abs=1e-9) == pytest.approx(4.22, abs=0.01)
    # a column that is all body sees nothing; a frame all body sees no ground at all
    assert B.blind_zone(K, POSE, SIZE, np.ones(SIZE, bool)) is None


def test_kitti_calib():
    calib = G.read_kitti_calib(CALIB)
    pose = G.kitti_camera_pose(calib)
    K2 = G.kitti_intrinsics(calib)
    zone = B.blind_zone(K2, pose, (375, 1242))
    # by KITTI's own homography (not the pose): the ground under the bottom edge at the principal point,
    # measured from the camera's ground point
    Hinv = np.linalg.inv(G.kitti_ground_homography(calib))
    p = Hinv @ [K2[0, 2], 374.5, 1.0]
    gx, gy = pose.ground_point()
    assert zone.ahead == pytest.approx(np.hypot(p[0] / p[2] - gx, p[1] / p[2] - gy), abs=0.02)
    assert 5.5 < zone.ahead < 6.0        # KITTI's BEV starts at 6 m: just beyond what the camera misses
    c = Hinv @ [-0.5, 374.5, 1.0]
    assert zone.distance == pytest.approx(np.hypot(c[0] / c[2] - gx, c[1] / c[2] - gy), abs=0.02)


def test_body_frame_sees_no_ground():
    # camera_link (x forward, z up) taken for the optical frame: the "optical axis" z points up
    body = G.CameraPose.from_transform((1.2, 0.0, 1.5), (0.0, np.sin(0.05), 0.0, np.cos(0.05)))
    assert B.blind_zone(K, body, SIZE) is None
    projector = G.GroundProjector(G.pose_homography(K, body), G.GridSpec(), SIZE)
    assert not B.sees_ground(projector)
    assert B.no_ground_message("front_camera_link", body) == (
        "camera 'front_camera_link' sees no ground cell: is it a body frame (x forward) rather than the "
        "optical frame (REP 103)?")
    # the optical frame itself sees the grid, and a rear-facing optical frame sees ground but no grid cell
    assert B.sees_ground(G.GroundProjector(G.pose_homography(K, POSE), G.GridSpec(), SIZE))
    rear = G.CameraPose.from_parameters(1.5, 0.1, yaw=np.pi, x=-0.5)
    assert B.blind_zone(K, rear, SIZE) is not None
    assert not B.sees_ground(G.GroundProjector(G.pose_homography(K, rear), G.GridSpec(), SIZE))
    assert "check its pose and the grid's extent" in B.no_ground_message("rear_optical", rear)
    assert "(no frame_id)" in B.no_ground_message("", None)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(G.GeometryError, match="no focal length"):
        B.blind_zone(np.zeros((3, 3)), POSE, SIZE)
    with pytest.raises(G.GeometryError, match="image size must be positive"):
        B.blind_zone(K, POSE, (0, 640))
    with pytest.raises(G.GeometryError, match="ego mask is 10x10 but the image is 640x480"):
        B.blind_zone(K, POSE, SIZE, np.zeros((10, 10), bool))
    with pytest.raises(G.GeometryError, match="above the ground"):
        B.blind_zone(K, G.CameraPose(POSE.rotation, np.array([1.2, 0.0, -1.0])), SIZE)
