"""Any 6-DoF camera pose to the ground homography (no ROS): quaternions, poses, the parameters' pose."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from icnet_ros.ground import geometry as G

K = np.array([[100.0, 0.0, 64.0], [0.0, 100.0, 48.0], [0.0, 0.0, 1.0]])
OPTICAL = (-0.5, 0.5, -0.5, 0.5)     # REP 103: a camera_link -> camera_optical quaternion (x, y, z, w)


def qmul(a, b):
    """Hamilton product of two (x, y, z, w) quaternions, by hand (independent of geometry.py)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def axis_q(axis, angle):
    s = np.sin(angle / 2)
    return tuple(float(v) for v in (*(np.asarray(axis) * s), np.cos(angle / 2)))


def tf_quaternion(roll, pitch, yaw):
    """Return the optical frame's rotation in base_frame as TF gives it: Rz(yaw) Ry(pitch) Rx(roll), then optical."""
    q = qmul(axis_q((0, 0, 1), yaw), axis_q((0, 1, 0), pitch))
    return qmul(qmul(q, axis_q((1, 0, 0), roll)), OPTICAL)


def test_quaternion_rotation_against_rodrigues():
    rng = np.random.default_rng(0)
    for _ in range(20):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(-np.pi, np.pi)
        q = axis_q(axis, angle)
        R, _ = cv2.Rodrigues(axis * angle)                       # an independent route
        np.testing.assert_allclose(G.quaternion_rotation(*q), R, atol=1e-12)
        np.testing.assert_allclose(G.quaternion_rotation(*(3.0 * np.array(q))), R, atol=1e-12)  # normalised
    np.testing.assert_allclose(G.quaternion_rotation(0, 0, 0, 1), np.eye(3))


def test_the_optical_quaternion_is_a_level_camera_looking_along_x():
    np.testing.assert_allclose(G.quaternion_rotation(*OPTICAL), G.rotation(0.0, 0.0, 0.0), atol=1e-12)


@pytest.mark.parametrize("roll,pitch,yaw", [(0.0, 0.1, 0.0), (-0.05, 0.12, 0.3), (0.2, 0.4, -2.5), (0.0, 0.0, np.pi)])
def test_a_pose_from_tf_is_the_pose_from_the_parameters(roll, pitch, yaw):
    params = G.CameraPose.from_parameters(1.4, pitch, roll, yaw, 1.5, -0.3)
    tf = G.CameraPose.from_transform((1.5, -0.3, 1.4), tf_quaternion(roll, pitch, yaw))
    np.testing.assert_allclose(tf.rotation, params.rotation, atol=1e-12)
    np.testing.assert_allclose(G.pose_homography(K, tf), G.ground_homography(K, 1.4, pitch, roll, yaw, 1.5, -0.3),
                               rtol=1e-9, atol=1e-9)
    assert tf.ground_point() == (1.5, -0.3)
    assert tf.heading() == pytest.approx(np.arctan2(np.sin(yaw), np.cos(yaw)))


def test_a_rolled_yawed_offset_pose_against_an_independent_projection():
    # a camera on the rear left corner looking back-left, rolled 10 degrees and pitched down
    pose = G.CameraPose.from_transform((-2.0, 0.8, 2.1), tf_quaternion(0.17, 0.35, 2.4))
    H = G.pose_homography(K, pose)
    rvec, _ = cv2.Rodrigues(pose.rotation.T)
    tvec = -pose.rotation.T @ pose.position
    pts = np.array([[-6.0, 4.0, 0.0], [-10.0, 8.0, 0.0], [-5.0, 2.5, 0.0], [-8.0, 6.0, 0.0]])
    expected, _ = cv2.projectPoints(pts, rvec, tvec, K, np.zeros(5))
    u, v, front = G.project(H, pts[:, 0], pts[:, 1])
    assert front.all()
    np.testing.assert_allclose(np.stack([u, v], 1), expected[:, 0], atol=1e-6)
    _, _, ahead = G.project(H, 10.0, 0.0)          # in front of the robot: behind this camera
    assert not ahead


def test_the_parameters_grid_is_unchanged():
    # ground_homography is now a CameraPose; its arithmetic (K R^T [e1 e2 -C]) is the one it had
    height, pitch, roll, yaw, x, y = 1.65, 0.08, 0.01, -0.1, 0.5, 0.2
    R = G.rotation(roll, pitch, yaw)
    before = K @ (R.T @ np.column_stack([[1.0, 0, 0], [0, 1.0, 0], -np.array([x, y, height])]))
    np.testing.assert_array_equal(G.ground_homography(K, height, pitch, roll, yaw, x, y), before)


def test_bad_poses_are_refused_in_one_line():
    with pytest.raises(G.GeometryError, match=r"quaternion \(0, 0, 0, 0\) has no rotation"):
        G.quaternion_rotation(0, 0, 0, 0)
    with pytest.raises(G.GeometryError, match="camera height must be above the ground, got -0.5 m"):
        G.pose_homography(K, G.CameraPose.from_transform((0.0, 0.0, -0.5), OPTICAL))


def test_blind_pixels_leave_their_cells_unknown():
    H = G.ground_homography(K, 1.5)
    drivable = np.ones((96, 128), bool)
    blind = np.zeros_like(drivable)
    blind[80:] = True
    spec = G.GridSpec(x_max=30.0)
    plain, masked = G.occupancy_grid(drivable, H, spec), G.occupancy_grid(drivable, H, spec, blind)
    projector = G.GroundProjector(H, spec, drivable.shape)
    through_blind = projector.sample(blind, fill=False)
    assert through_blind.any() and (masked[through_blind] == G.UNKNOWN).all()
    np.testing.assert_array_equal(masked[~through_blind], plain[~through_blind])


def test_pose_parameters_are_checked_in_one_line(tmp_path):
    from icnet_ros import node_config as C

    with pytest.raises(C.ConfigError, match=r"^parameter 'camera_pose_source': 'calib_file' needs parameter "
                                            r"'calib_file' set$"):
        C.from_params({"device": "cpu", "camera_pose_source": "calib_file"})
    with pytest.raises(C.ConfigError, match=r"^parameter 'camera_pose_source': 'gps' is not one of auto, tf, "
                                            r"parameters, calib_file$"):
        C.from_params({"device": "cpu", "camera_pose_source": "gps"})
    with pytest.raises(C.ConfigError, match=r"^parameter 'camera_pose_refresh_s': value -1.0 is invalid"):
        C.from_params({"device": "cpu", "camera_pose_refresh_s": -1.0})
    calib = Path(__file__).parent / "data/kitti_road/calib/um_000000.txt"
    config = C.from_params({"device": "cpu", "camera_pose_source": "calib_file", "calib_file": str(calib)})
    with pytest.raises(C.ConfigError, match=r"^parameter 'camera_pose_source': 'calib_file' needs"):
        C.with_changes(config, {"calib_file": ""})          # a live change may not take the file away
    assert C.with_changes(config, {"camera_frame": "front_optical"}).camera_frame == "front_optical"
    with pytest.raises(C.ConfigError, match=r"^parameter 'camera_frame': '/front_optical' is not a TF frame id"):
        C.with_changes(config, {"camera_frame": "/front_optical"})
