"""
Inputs that never come or cannot be used (issue 38), over real DDS: each first-run mistake gets one line.

A wrong image or CameraInfo topic, a best-effort publisher for a reliable subscription,
an uncalibrated camera (K all zeros), a CameraInfo of another size: each is named in the
log (rcutils writes to stderr: capfd) and in /diagnostics, with what to do.
`input_timeout_s` is 1 s here to keep the tests short (5 s by default).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import HAVE_RCLPY, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo, Image

    from icnet_ros.ros import inputs
    from icnet_ros.ros.conversions import numpy_to_image
    from test_node import camera_info

FRAME = np.zeros((48, 64, 3), np.uint8)


def ours(g, timeout=8.0, want=lambda s: True):
    """Return the node's newest DiagnosticStatus whose message names the graph's namespace and satisfies want."""
    def find():
        for arr in reversed(list(g.diags)):
            for s in arr.status:
                if g.ns in s.message and want(s):
                    return s
        return None

    assert wait_for(lambda: find() is not None, timeout), "no such diagnostics"
    return find()


def log_until(capfd, text: str, timeout: float = 15.0) -> str:
    """Return the stderr gathered until it holds text (the node logs through rcutils)."""
    seen = []
    wait_for(lambda: seen.append(capfd.readouterr().err) or text in "".join(seen), timeout, step=0.1)
    return "".join(seen)


def line_with(log: str, text: str) -> str:
    lines = [ln for ln in log.splitlines() if text in ln]
    assert lines, f"no log line with {text!r} in:\n{log}"
    return lines[0]


def test_wrong_topics_are_named_with_the_topics_that_carry_images(graph_factory, capfd):
    g = graph_factory(input_timeout_s=1.0, qos_reliability="reliable")
    g.diags = g.collect(DiagnosticArray, "/diagnostics")
    g.collect(OccupancyGrid, g.output("drivable_area"))     # the grid is wanted: CameraInfo is needed
    wrong_image = g.publisher(Image, g.topic("cam/image_raw"))
    wrong_info = g.publisher(CameraInfo, g.topic("cam/info"))
    for _ in range(3):
        wrong_image.publish(numpy_to_image(FRAME))
        wrong_info.publish(camera_info(48, 64))
    log = log_until(capfd, "no CameraInfo on")
    line = line_with(log, f"no images on {g.ns}/image for ")
    assert "WARN" in line
    assert f"image topics now: {g.ns}/cam/image_raw (1 publisher)" in line
    assert "remap the node's image to " in line and "--ros-args -r image:=" in line
    line = line_with(log, f"no CameraInfo on {g.ns}/camera_info for ")
    assert "(drivable_area, obstacles and free_space need it, or calib_file)" in line
    assert f"CameraInfo topics now: {g.ns}/cam/info (1 publisher)" in line
    s = ours(g, want=lambda s: "no CameraInfo" in s.message)
    assert s.level == DiagnosticStatus.WARN
    assert s.message.startswith(f"no images on {g.ns}/image for ")
    assert f"{g.ns}/cam/image_raw (1 publisher)" in s.message
    assert f"{g.ns}/cam/info (1 publisher)" in s.message

    # said once, not every second
    later = log_until(capfd, "never said", timeout=1.5)
    assert "no images on" not in later

    # remapped by hand (a camera on the right topics, publishing on): it says so, and diagnostics clear
    right_image, right_info = g.publisher(Image, g.topic("image")), g.publisher(CameraInfo, g.topic("camera_info"))
    g.wait_matched(right_image, right_info)

    def flowing():
        right_info.publish(camera_info(48, 64))
        right_image.publish(numpy_to_image(FRAME))
        return not g.node.cameras[0].stats.input_problem

    assert wait_for(flowing, 10.0, step=0.1)
    log = log_until(capfd, "CameraInfo arriving on")
    assert f"images arriving on {g.ns}/image now" in log and f"CameraInfo arriving on {g.ns}/camera_info now" in log
    # Deactivated, then quiet a moment before the teardown shuts the executor down: rclpy's
    # Executor.shutdown does not wait for a callback in flight, which then prints "exception was
    # never retrieved" (noise, not a failure).
    g.node.trigger_deactivate()
    time.sleep(0.5)


def test_a_best_effort_publisher_for_a_reliable_subscription_is_named(graph_factory, capfd):
    g = graph_factory(input_timeout_s=1.0, qos_reliability="reliable")
    g.diags = g.collect(DiagnosticArray, "/diagnostics")
    pub = g.publisher(Image, g.topic("image"), reliable=False)
    pub.publish(numpy_to_image(FRAME))
    log = log_until(capfd, f"no images on {g.ns}/image")
    event = line_with(log, f"a publisher on {g.ns}/image offers QoS that this node's subscription cannot match")
    assert "(RELIABILITY)" in event and "set qos_reliability:=best_effort" in event
    line = line_with(log, f"no images on {g.ns}/image")
    assert f"{g.ns}/image (1 publisher, best effort: cannot reach this node's reliable subscription)" in line
    assert line.endswith("set qos_reliability:=best_effort")
    assert ours(g).level == DiagnosticStatus.WARN
    assert g.node.stats()["received"] == 0


def test_camera_info_with_k_all_zeros_is_named_once_with_the_fix(graph_factory, capfd):
    g = graph_factory(input_timeout_s=5.0, qos_reliability="reliable")
    g.diags = g.collect(DiagnosticArray, "/diagnostics")
    grids = g.collect(OccupancyGrid, g.output("drivable_area"))
    masks = g.collect(Image, g.output("mask"))
    pub, info_pub = g.publisher(Image, g.topic("image")), g.publisher(CameraInfo, g.topic("camera_info"))
    g.wait_matched(pub, info_pub)
    zeros = CameraInfo()
    zeros.height, zeros.width = 48, 64      # what an uncalibrated driver sends: K, D, R, P all zero
    for i in range(4):
        info_pub.publish(zeros)
        msg = numpy_to_image(FRAME)
        msg.header.stamp.sec = i + 1
        pub.publish(msg)
        assert wait_for(lambda: len(masks) > i, 10.0)
    log = log_until(capfd, "K is all zeros")
    s = ours(g, want=lambda s: "K is all zeros" in s.message)
    assert s.level == DiagnosticStatus.WARN
    assert s.message == (f"CameraInfo on {g.ns}/camera_info: K is all zeros (the camera is not calibrated); "
                         f"drivable_area, obstacles and free_space need usable intrinsics: " + inputs.FIX_K)
    log += log_until(capfd, "never said", timeout=1.5)
    assert log.count("K is all zeros") == 1, log
    assert "no CameraInfo" not in log and not grids


@pytest.mark.parametrize("k, problem", [
    ([0.0] * 9, "K is all zeros (the camera is not calibrated)"),
    ([-500.0, 0, 320, 0, 500.0, 240, 0, 0, 1], "K's focal lengths fx -500 and fy 500 are not both positive"),
    ([500.0, 0, 320, 0, 0.0, 240, 0, 0, 1], "K's focal lengths fx 500 and fy 0 are not both positive"),
    ([float("nan"), 0, 320, 0, 500.0, 240, 0, 0, 1], "K holds NaN or infinite values"),
    ([500.0, 0, 320, 0, 500.0, 240, 0, 0, 0], "K's last row is [0.0, 0.0, 0.0], not [0, 0, 1]"),
    ([500.0, 0, 320, 0, 500.0, 240, 0, 0, 1], ""),
])
def test_k_problems_are_named(k, problem):
    assert inputs.k_problem(k) == problem


def test_a_camera_info_of_another_aspect_ratio_withholds_the_grid_and_says_so():
    from icnet_ros.node_config import NodeConfig
    from icnet_ros.ground.geometry import CameraPose
    from icnet_ros.ros.camera import Camera

    cam = Camera("", "raw")
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    pose = CameraPose.from_parameters(1.5, 0.05, 0.0, 0.0, 0.0, 0.0)
    cam.info = (K, (480, 640))
    assert cam.homography((240, 320), NodeConfig(), "parameters", pose) is not None     # the same view, halved
    assert cam.size_problem == ""
    assert cam.homography((375, 1242), NodeConfig(), "parameters", pose) is None
    assert cam.size_problem == ("its size 640x480 is not the images' 1242x375 scaled (another aspect ratio: "
                                "another camera's CameraInfo, or a cropped stream)")
    line = inputs.info_line("/cam/camera_info", cam.size_problem, "/cam/image")
    assert line.endswith("publish the CameraInfo of the stream on /cam/image, or give the intrinsics in calib_file")
    assert inputs.size_problem((0, 0), (375, 1242)) == ""          # no size given: K as it is
    assert inputs.size_problem((375, 1242), (193, 640)) == ""       # a resized stream


def test_the_hint_says_what_to_do_for_each_graph():
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy as R

    reliable, best_effort = QoSProfile(depth=1, reliability=R.RELIABLE), QoSProfile(depth=1, reliability=R.BEST_EFFORT)
    raw, compressed = inputs.IMAGE_TYPES
    hint = lambda found, sub=best_effort: inputs.InputWatch._hint(None, found, "/image", "image", raw, sub)  # noqa
    assert hint({"/cam/image_raw/compressed": [(compressed, reliable)]}) == (
        "set input_transport:=compressed and remap the node's image/compressed to it: "
        "--ros-args -p input_transport:=compressed -r image/compressed:=/cam/image_raw/compressed")
    assert hint({"/a": [(raw, reliable)], "/b": [(raw, reliable)]}) == (
        "remap the node's image to one of them: --ros-args -r image:=TOPIC")
    assert hint({"/image": [(raw, reliable)]}).startswith(
        "its publisher sent nothing the node could take; large frames over best effort can be lost whole")
    assert hint({"/image": [(raw, reliable)]}, reliable) == "its publisher sent nothing the node could take"
    assert hint({"/image": [(raw, best_effort)]}, reliable).endswith("set qos_reliability:=best_effort")
    assert hint({}).startswith("is the camera driver running, on ROS_DOMAIN_ID ")
