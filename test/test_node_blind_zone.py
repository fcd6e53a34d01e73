"""
The node reports its camera's blind zone, and says when a camera sees no ground (issue 34), over real DDS.

TF through test/tf2_standin.py (a stand-in for tf2_ros), as in test_node_robot.py: the
camera 1.2 m ahead of base_link, 1.5 m up, pitched down 0.1 rad (docs/robot.md's example).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import HAVE_RCLPY

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from diagnostic_msgs.msg import DiagnosticStatus

    from icnet_ros.ground import blind_zone, geometry
    from test_camera_pose import tf_quaternion
    from test_node import image_publisher_with_info
    from test_node_robot import green, H, K, newest, road, send, SPEC, start, status, values, W  # noqa: F401
    import tf2_standin


def optical(pitch: float, frame: str = "cam"):
    """base_link <- the camera's optical frame (REP 103), as robot_state_publisher composes it."""
    return tf2_standin.transform("base_link", frame, (1.2, 0.0, 1.5), tf_quaternion(0.0, pitch, 0.0))


def expected_zone(pitch: float) -> str:
    pose = geometry.CameraPose.from_parameters(1.5, pitch, x=1.2)
    return f"{blind_zone.blind_zone(K, pose, (H, W)).distance:.2f}"


def test_blind_zone_in_diagnostics_and_logged_once_per_pose(graph_factory, green, standin, capfd):  # noqa: F811
    # camera_pose_refresh_s 0: each frame's pose at its stamp, so a new mount shows at the next frame
    g = graph_factory(green, qos_reliability="reliable", camera_pose_source="tf", camera_pose_refresh_s=0.0, **SPEC)
    masks, grids = start(g, "drivable_mask", "drivable_area")
    pub = image_publisher_with_info(g, H, W, 100.0)
    standin.BUFFERS[-1].set_transform_static(optical(0.1), "test")
    capfd.readouterr()
    for sec in (1, 2, 3):
        send(pub, road(), sec)
        newest(grids, sec)
    s = status(g, lambda s: values(s)["blind zone (m)"] != "")
    assert s.level == DiagnosticStatus.OK and values(s)["blind zone (m)"] == expected_zone(0.1)
    log = capfd.readouterr().err
    assert log.count("blind zone") == 1, log          # three frames, one pose: one line
    assert f"camera 'cam': blind zone {expected_zone(0.1)} m from its ground point" in log
    assert "raytrace_min_range" in log

    standin.BUFFERS[-1].set_transform_static(optical(0.25), "test")       # re-mounted, pitched further down
    assert expected_zone(0.25) != expected_zone(0.1)
    for sec in (4, 5):
        send(pub, road(), sec)
        newest(grids, sec)
    s = status(g, lambda s: values(s)["blind zone (m)"] == expected_zone(0.25))
    log = capfd.readouterr().err
    assert log.count("blind zone") == 1 and f"blind zone {expected_zone(0.25)} m" in log


def test_a_body_frame_taken_for_the_optical_frame_is_named(graph_factory, green, standin, capfd):  # noqa: F811
    # camera_link (x forward, z up), published as the image's frame: no optical rotation
    g = graph_factory(green, qos_reliability="reliable", camera_pose_source="tf", **SPEC)
    masks, grids, clouds = start(g, "drivable_mask", "drivable_area", "obstacles")
    pub = image_publisher_with_info(g, H, W, 100.0)
    body = (0.0, math.sin(0.05), 0.0, math.cos(0.05))                    # pitched down 0.1 rad, nothing else
    standin.BUFFERS[-1].set_transform_static(
        tf2_standin.transform("base_link", "front_camera_link", (1.2, 0.0, 1.5), body), "test")
    send(pub, road(), 1, "front_camera_link")
    newest(masks, 1)                                                       # the masks keep flowing
    message = ("camera 'front_camera_link' sees no ground cell: is it a body frame (x forward) rather than "
               "the optical frame (REP 103)?")
    s = status(g, lambda s: s.level == DiagnosticStatus.WARN)
    assert s.message == message and values(s)["drivable_area withheld"] == message
    assert values(s)["camera pose"] == "tf" and values(s)["blind zone (m)"] == ""
    assert not grids and not clouds
    assert message in capfd.readouterr().err

    # the optical frame under it: the grid comes, the warning goes
    standin.BUFFERS[-1].set_transform_static(optical(0.1, "front_camera_optical_frame"), "test")
    send(pub, road(), 2, "front_camera_optical_frame")
    newest(grids, 2)
    s = status(g, lambda s: s.level == DiagnosticStatus.OK)
    assert values(s)["blind zone (m)"] == expected_zone(0.1)
    assert np.array(grids[-1].data).max() == 100
