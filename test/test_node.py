"""
The segmentation node over real DDS.

Headers, QoS, compressed input, the drivable grid, several cameras, overload, outputs
nobody listens to, lifecycle, diagnostics.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import green_road_checkpoint_file, HAVE_RCLPY, tiny_checkpoint_file, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    from icnet_ros.ground import geometry
    from icnet_ros.classes import KITTI_ROAD
    from icnet_ros.ros.conversions import numpy_to_compressed, numpy_to_image


def frame(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def image_msg(array, sec=0, nanosec=0, frame_id="cam", encoding="rgb8"):
    msg = numpy_to_image(array, encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    return msg


def stamp(msg):
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def camera_info(h, w, f=60.0):
    info = CameraInfo()
    info.height, info.width = h, w
    info.k = [f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0]
    return info


def publish_until(pub, msg, box, timeout=10.0):
    """Publish (again, for best effort) until something arrives in box."""
    for _ in range(int(timeout / 0.25)):
        pub.publish(msg)
        if wait_for(lambda: len(box) > 0, 0.25):
            return True
    return False


@pytest.mark.parametrize("reliable", [True, False], ids=["reliable", "best_effort"])
def test_outputs_carry_the_input_header(graph_factory, reliable):
    g = graph_factory(qos_reliability="reliable" if reliable else "best_effort", camera_height=1.5)
    boxes = {name: g.collect(Image, g.output(name)) for name in ("mask", "drivable_mask", "overlay")}
    boxes["drivable_area"] = g.collect(OccupancyGrid, g.output("drivable_area"))
    pub = g.publisher(Image, g.topic("image"), reliable=reliable)
    info_pub = g.publisher(CameraInfo, g.topic("camera_info"), reliable=reliable)
    g.wait_matched(pub, info_pub)
    rgb = frame()
    info_pub.publish(camera_info(48, 64))
    wait_for(lambda: g.node.cameras[0].info is not None, 2.0)
    assert publish_until(pub, image_msg(rgb, 1234, 5678, "front_optical"), boxes["drivable_area"])
    assert wait_for(lambda: all(boxes.values()), 5.0)

    expected = g.node.engine.infer([rgb])[0]
    mask, drivable, over = boxes["mask"][0], boxes["drivable_mask"][0], boxes["overlay"][0]
    for msg in (mask, drivable, over):
        assert stamp(msg) == (1234, 5678) and msg.header.frame_id == "front_optical"
        assert (msg.height, msg.width) == (48, 64)
    assert mask.encoding == "mono8" and drivable.encoding == "mono8" and over.encoding == "rgb8"
    np.testing.assert_array_equal(np.frombuffer(mask.data, np.uint8).reshape(48, 64), expected.classes)
    np.testing.assert_array_equal(np.frombuffer(drivable.data, np.uint8).reshape(48, 64),
                                  expected.drivable.astype(np.uint8) * 255)
    grid = boxes["drivable_area"][0]
    assert stamp(grid) == (1234, 5678) and grid.header.frame_id == "base_link"
    assert (grid.info.width, grid.info.height, grid.info.resolution) == (400, 200, pytest.approx(0.1))
    assert (grid.info.origin.position.x, grid.info.origin.position.y) == (0.0, -10.0)


def test_compressed_input(graph_factory):
    g = graph_factory(input_transport="compressed", qos_reliability="reliable")
    masks = g.collect(Image, g.output("mask"))
    pub = g.publisher(CompressedImage, g.topic("image/compressed"))
    g.wait_matched(pub)
    rgb = frame(40, 56)
    for i, fmt in enumerate(("png", "jpeg"), start=1):
        msg = numpy_to_compressed(rgb, fmt)
        msg.header.stamp.sec, msg.header.frame_id = i, f"cam_{fmt}"
        pub.publish(msg)
        assert wait_for(lambda: len(masks) == i, 10.0), f"no mask for the {fmt} frame"
        assert stamp(masks[-1]) == (i, 0) and masks[-1].header.frame_id == f"cam_{fmt}"
        assert (masks[-1].height, masks[-1].width) == (40, 56)
    # PNG is lossless: the mask is exactly what the network says about the frame
    png_mask = np.frombuffer(masks[0].data, np.uint8).reshape(40, 56)
    np.testing.assert_array_equal(png_mask, g.node.engine.infer([rgb])[0].classes)


def image_publisher_with_info(g, h: int, w: int, f: float):
    """Return an image publisher for the node's camera, once the node holds this CameraInfo."""
    pub = g.publisher(Image, g.topic("image"))
    info_pub = g.publisher(CameraInfo, g.topic("camera_info"))
    g.wait_matched(pub, info_pub)
    info_pub.publish(camera_info(h, w, f=f))
    assert wait_for(lambda: g.node.cameras[0].info is not None, 5.0)
    return pub


@pytest.mark.parametrize("road", [True, False], ids=["all_road", "no_road"])
def test_grid_free_ahead_and_unseen_outside_the_view(graph_factory, tmp_path, road):
    # The model calls every pixel road (or none), so the lower part of the frame, which
    # sees the ground, must come out free (or occupied) ahead, and -1 outside the view.
    ckpt = tiny_checkpoint_file(tmp_path / "const.pt", KITTI_ROAD, constant_class=1 if road else 0)
    g = graph_factory(ckpt, qos_reliability="reliable", camera_height=1.5, camera_pitch=0.1)
    grids = g.collect(OccupancyGrid, g.output("drivable_area"))
    pub = image_publisher_with_info(g, 64, 128, f=80.0)
    pub.publish(image_msg(frame(64, 128), 7))
    assert wait_for(lambda: grids, 10.0)
    msg = grids[-1]
    grid = np.array(msg.data, np.int8).reshape(msg.info.height, msg.info.width)
    row = lambda y: int((y + 10.0) / 0.1)  # noqa: E731
    col = lambda x: int(x / 0.1)  # noqa: E731
    ahead = grid[row(-0.5):row(0.5), col(8.0):col(20.0)]
    assert (ahead == (0 if road else 100)).all()
    assert grid[row(9.5), col(2.0)] == -1      # far to the left, close by: outside the view
    assert grid[row(0.0), col(0.5)] == -1      # under the camera: below the image
    H = geometry.ground_homography(np.array(camera_info(64, 128, 80.0).k).reshape(3, 3), 1.5, 0.1)
    expected = geometry.occupancy_grid(np.full((64, 128), road), H, geometry.GridSpec())
    np.testing.assert_array_equal(grid, expected)

    # grid extent and resolution change live
    assert g.node.set_parameters([rclpy_param("grid_resolution", 0.2), rclpy_param("grid_x_max", 30.0)])[0].successful
    pub.publish(image_msg(frame(64, 128), 8))
    assert wait_for(lambda: stamp(grids[-1])[0] == 8, 10.0)
    assert (grids[-1].info.width, grids[-1].info.height) == (150, 100)


def test_frame_whose_lower_part_is_road_gives_free_cells_ahead(graph_factory, tmp_path):
    # Green is road for this hand-wired model; the lower 40% of the frame is green.
    g = graph_factory(green_road_checkpoint_file(tmp_path / "green.pt"), qos_reliability="reliable",
                      camera_height=1.5, grid_x_max=30.0)
    grids = g.collect(OccupancyGrid, g.output("drivable_area"))
    masks = g.collect(Image, g.output("drivable_mask"))
    pub = image_publisher_with_info(g, 96, 128, f=100.0)
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[:58, :, 0] = 255           # red above row 58
    rgb[58:, :, 1] = 255           # green (road) below
    pub.publish(image_msg(rgb, 5))
    assert wait_for(lambda: grids and masks, 10.0)
    drivable = np.frombuffer(masks[-1].data, np.uint8).reshape(96, 128) > 0
    assert drivable[64:].all() and not drivable[:52].any()      # the network saw the road
    msg = grids[-1]
    grid = np.array(msg.data, np.int8).reshape(msg.info.height, msg.info.width)
    cell = lambda x, y: grid[int((y + 10.0) / 0.1), int(x / 0.1)]  # noqa: E731
    # level camera 1.5 m up, f 100, cy 48: ground at X is on row 48 + 150 / X
    assert cell(5.05, 0.05) == 0          # row 77.7: road, ahead
    assert cell(8.05, -1.0) == 0          # row 66.6
    assert cell(25.05, 0.05) == 100       # row 54: red, not drivable
    assert cell(1.05, 0.05) == -1         # row 191: below the image
    assert cell(5.05, 9.95) == -1         # far left at 5 m: outside the view
    H = geometry.ground_homography(np.array(camera_info(96, 128, 100.0).k).reshape(3, 3), 1.5)
    np.testing.assert_array_equal(grid, geometry.occupancy_grid(drivable, H, geometry.GridSpec(x_max=30.0)))


def rclpy_param(name, value):
    from rclpy.parameter import Parameter

    return Parameter(name, value=value)


def test_two_cameras_share_a_batch_and_keep_their_headers(graph_factory):
    g = graph_factory(cameras=["left", "right"], qos_reliability="reliable", batch_wait_ms=1000.0)
    masks = {c: g.collect(Image, g.output("mask", c)) for c in ("left", "right")}
    overlays = {c: g.collect(Image, g.output("overlay", c)) for c in ("left", "right")}
    pubs = {c: g.publisher(Image, g.topic(f"{c}/image")) for c in ("left", "right")}
    g.wait_matched(*pubs.values())
    frames = {"left": frame(seed=1), "right": frame(seed=2)}
    pubs["left"].publish(image_msg(frames["left"], 10, 1, "left_optical"))
    pubs["right"].publish(image_msg(frames["right"], 10, 2, "right_optical"))
    assert wait_for(lambda: all(masks.values()) and all(overlays.values()), 10.0)
    for c, nsec in (("left", 1), ("right", 2)):
        for box in (masks[c], overlays[c]):
            assert len(box) == 1 and stamp(box[0]) == (10, nsec) and box[0].header.frame_id == f"{c}_optical"
        np.testing.assert_array_equal(np.frombuffer(masks[c][0].data, np.uint8)
                                      .reshape(48, 64), g.node.engine.infer([frames[c]])[0].classes)
        assert g.node.stats(c)["last_batch"] == 2, "the two frames did not go through the network together"


def test_a_burst_leaves_no_backlog(graph_factory):
    # A deep reliable queue delivers every frame to the node; the node itself must skip
    # the stale ones and end on the newest.
    g = graph_factory(qos_reliability="reliable", qos_depth=50, publish_overlay=False)
    masks = g.collect(Image, g.output("mask"))
    pub = g.publisher(Image, g.topic("image"), depth=50)
    g.wait_matched(pub)
    n = 30
    frames = [image_msg(frame(240, 320, seed=i % 3), i + 1) for i in range(n)]
    for msg in frames:
        pub.publish(msg)
    assert wait_for(lambda: masks and stamp(masks[-1])[0] == n, 20.0), "the newest frame never came out"
    wait_for(lambda: False, 0.5)      # anything still queued would show up now
    assert stamp(masks[-1])[0] == n
    s = g.node.stats()
    assert s["received"] == n
    assert len(masks) < n and s["dropped"] > 0 and s["processed"] + s["dropped"] == n
    assert [stamp(m)[0] for m in masks] == sorted(stamp(m)[0] for m in masks)


def test_outputs_nobody_listens_to_cost_nothing(graph_factory):
    g = graph_factory(qos_reliability="reliable", publish_overlay=False)
    pub = g.publisher(Image, g.topic("image"))
    g.wait_matched(pub)
    pub.publish(image_msg(frame(), 1))
    assert wait_for(lambda: g.node.stats()["skipped"] == 1, 10.0)
    assert g.node.stats()["processed"] == 0
    # overlay switched off: listening to it alone still runs nothing
    g.collect(Image, g.output("overlay"))
    assert wait_for(lambda: g.node.cameras[0].pubs["overlay"].get_subscription_count() > 0, 10.0)
    pub.publish(image_msg(frame(), 2))
    assert wait_for(lambda: g.node.stats()["skipped"] == 2, 10.0)
    masks = g.collect(Image, g.output("mask"))
    g.wait_matched(pub)
    pub.publish(image_msg(frame(), 3))
    assert wait_for(lambda: masks, 10.0) and g.node.stats()["processed"] == 1
    assert not g.received[g.output("overlay")]


def test_lifecycle_deactivate_cleanup_activate(graph_factory):
    g = graph_factory(qos_reliability="reliable")
    masks = g.collect(Image, g.output("mask"))
    pub = g.publisher(Image, g.topic("image"))
    g.wait_matched(pub)
    pub.publish(image_msg(frame(), 1))
    assert wait_for(lambda: len(masks) == 1, 10.0)

    from rclpy.lifecycle import TransitionCallbackReturn as R

    assert g.node.trigger_deactivate() == R.SUCCESS and g.node.state == "inactive"
    assert wait_for(lambda: pub.get_subscription_count() == 0, 5.0)
    pub.publish(image_msg(frame(), 2))
    wait_for(lambda: False, 0.3)
    assert len(masks) == 1

    assert g.node.trigger_cleanup() == R.SUCCESS and g.node.state == "unconfigured"
    assert g.node.engine is None
    assert g.configure() and g.activate() and g.node.state == "active"
    g.wait_matched(pub)
    pub.publish(image_msg(frame(), 3))
    assert wait_for(lambda: len(masks) == 2, 10.0) and stamp(masks[-1])[0] == 3


def test_diagnostics(graph_factory):
    g = graph_factory(qos_reliability="reliable")
    diags = g.collect(DiagnosticArray, "/diagnostics")
    masks = g.collect(Image, g.output("mask"))
    pub = g.publisher(Image, g.topic("image"))
    g.wait_matched(pub)
    pub.publish(image_msg(frame(), 1))
    assert wait_for(lambda: masks, 10.0)

    def ours():
        for arr in list(diags):
            for s in arr.status:
                values = {kv.key: kv.value for kv in s.values}
                if s.name.startswith("icnet") and values.get("frames processed") == "1":
                    return values
        return None

    assert wait_for(ours, 5.0), "no diagnostics reporting the processed frame"
    values = ours()
    for key in ("input rate (Hz)", "output rate (Hz)", "inference (ms)", "latency mean (ms)",
                "dropped frames", "bad messages", "device"):
        assert key in values
    assert values["device"] == "cpu" and values["dropped frames"] == "0"
