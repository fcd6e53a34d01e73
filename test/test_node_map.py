"""
`~/drivable_map` on a live node over real DDS (issue 34, part 1).

A vehicle drives along a synthetic road (test/driving.py: docs/robot.md's example camera);
the hand-wired green-road model reads the frames.  The robot's pose in `odom` comes from a
nav_msgs/Odometry topic or from TF (test/tf2_standin.py, injected as tf2_ros).  Images,
CameraInfo, odometry, the map and /diagnostics all travel over DDS.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from conftest import green_road_checkpoint_file, HAVE_RCLPY, next_status, wait_for
import driving

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from nav_msgs.msg import OccupancyGrid, Odometry
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from icnet_ros.ground.drivable_map import FREE, OCCUPIED, RollingMap, UNKNOWN
    from icnet_ros.ros.conversions import numpy_to_image
    from test_camera_pose import tf_quaternion
    import tf2_standin

H, W = 120, 160
MAP = {"map_size": 40.0, "map_resolution": 0.2}
CAMERA = {"camera_pose_source": "parameters", "camera_height": driving.HEIGHT, "camera_pitch": driving.PITCH,
          "camera_x": driving.AHEAD}


@pytest.fixture(scope="module")
def green(tmp_path_factory):
    return green_road_checkpoint_file(tmp_path_factory.mktemp("map") / "green.pt")


def set_stamp(header, t: float) -> None:
    header.stamp.sec, header.stamp.nanosec = int(t), int(round((t - int(t)) * 1e9))


def odometry(t, x, y=0.0, yaw=0.0, vx=10.0, frame="odom"):
    msg = Odometry()
    set_stamp(msg.header, t)
    msg.header.frame_id, msg.child_frame_id = frame, "base_link"
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(x), float(y)
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    msg.twist.twist.linear.x = float(vx)
    return msg


class Drive:
    """The test's side: camera and odometry publishers, the map, masks and diagnostics collected."""

    def __init__(self, g, cameras=("",), odom=True):
        self.g = g
        self.maps = g.collect(OccupancyGrid, g.output("drivable_map"))
        self.masks = {c: g.collect(Image, g.output("drivable_mask", c)) for c in cameras}
        self.diags = g.collect(DiagnosticArray, "/diagnostics")
        prefix = {c: f"{c}/" if c else "" for c in cameras}
        self.images = {c: g.publisher(Image, g.topic(prefix[c] + "image")) for c in cameras}
        infos = [g.publisher(CameraInfo, g.topic(prefix[c] + "camera_info")) for c in cameras]
        self.odom = g.publisher(Odometry, g.topic("odom")) if odom else None
        g.wait_matched(*self.images.values(), *infos, *([self.odom] if odom else []))
        info = CameraInfo(height=H, width=W, k=driving.intrinsics(W, H).ravel().tolist())
        for pub in infos:
            pub.publish(info)
        assert wait_for(lambda: all(c.info is not None for c in g.node.cameras), 5.0)

    def send_odometry(self, t, x, **kw):
        kept = len(self.g.node._map.robot._history)
        self.odom.publish(odometry(t, x, **kw))
        assert wait_for(lambda: len(self.g.node._map.robot._history) > kept or self.g.node._map.robot._refused, 5.0)

    def frame(self, t, rgb, camera="", frame_id="cam", wait=True):
        msg = numpy_to_image(rgb)
        set_stamp(msg.header, t)
        msg.header.frame_id = frame_id
        self.images[camera].publish(msg)
        if wait:
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            box = self.maps if self.maps is not None else self.masks[camera]
            assert wait_for(lambda: box and (box[-1].header.stamp.sec, box[-1].header.stamp.nanosec) == stamp,
                            10.0), f"no map for the frame at {t}"

    def status(self, want, timeout=4.0):
        """Return the first drivable_map status from now on for which want(status) holds."""
        return next_status(self.diags, lambda s: s.name.endswith(": drivable_map") and want(s), timeout)


def grid_of(msg):
    return np.array(msg.data, np.int8).reshape(msg.info.height, msg.info.width)


def cell(msg, x, y) -> int:
    o, r = msg.info.origin.position, msg.info.resolution
    return int(grid_of(msg)[int((y - o.y) // r), int((x - o.x) // r)])


def drive_with_odometry(d, scene, x_from=100.0, x_to=110.0):
    """10 m/s at 10 Hz along X: odometry, then the frame, each waited for."""
    t0 = 1000.0
    for k in range(int(round(x_to - x_from)) + 1):
        t, x = t0 + 0.1 * k, x_from + k
        d.send_odometry(t, x)
        d.frame(t, driving.rgb_frame(scene, x, 0.0, 0.0, (H, W)))
    return t0 + 0.1 * (x_to - x_from)


def core_map(scene, x_from=100.0, x_to=110.0) -> np.ndarray:
    """Return the same drive through the core alone, from ideal probabilities: what the node's map should be."""
    m = RollingMap(MAP["map_size"], MAP["map_resolution"], 10.0)
    for k in range(int(round(x_to - x_from)) + 1):
        prob, Hm = driving.probability_frame(scene, x_from + k, 0.0, 0.0, (H, W))
        m.move_to(x_from + k, 0.0)
        m.fuse(prob, Hm, 0.1 * k)
    return m.render(0.1 * (x_to - x_from))


def test_the_map_from_odometry_keeps_the_blind_zone_after_driving_forward(graph_factory, green):
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    d = Drive(g)
    t = drive_with_odometry(d, driving.road())
    msg = d.maps[-1]
    assert msg.header.frame_id == "odom" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1001, 0)
    o = msg.info.origin
    assert (o.orientation.x, o.orientation.y, o.orientation.z, o.orientation.w) == (0.0, 0.0, 0.0, 1.0)
    assert (msg.info.width, msg.info.height) == (200, 200) and msg.info.resolution == pytest.approx(0.2)
    assert (o.position.x, o.position.y) == pytest.approx((90.0, -20.0))    # centred on the robot at (110, 0)
    blind = driving.nearest_ground_ahead(W, H)
    for ahead in (-1.0, 0.0, 1.0, 2.0, 3.0):                     # under and around the vehicle: seen before
        assert ahead < blind and cell(msg, 110.0 + ahead, 0.0) == FREE, ahead
    assert cell(msg, 111.0, 5.0) == OCCUPIED                     # off the road, seen earlier
    assert cell(msg, 99.0, 0.0) == UNKNOWN                       # behind the start: never seen
    got, expected = grid_of(msg), core_map(driving.road())
    known = expected != UNKNOWN
    assert known.sum() > 3000 and ((got != UNKNOWN) != known).mean() < 0.005
    y = -20.0 + (np.arange(200)[:, None] + 0.5) * 0.2 + np.zeros((1, 200))
    clear = known & (np.abs(np.abs(y) - 4.0) > 0.6)             # the model shifts the road's edges by a pixel
    assert clear.sum() > 0.8 * known.sum() and (got[clear] == expected[clear]).mean() > 0.995
    assert d.status(lambda s: s.level == DiagnosticStatus.OK).message.startswith("11 maps published")
    assert t == pytest.approx(1001.0)


def test_the_map_from_tf_looks_up_each_stamp_without_waiting(graph_factory, green, standin):
    g = graph_factory(green, qos_reliability="reliable", **CAMERA, **MAP)
    d = Drive(g, odom=False)
    buffer = standin.BUFFERS[-1]
    for k in range(6):
        t, x = 1000.0 + 0.1 * k, 100.0 + k
        tf = tf2_standin.transform("odom", "base_link", (x, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
        set_stamp(tf.header, t)
        buffer.set_transform(tf, "test")
        d.frame(t, driving.rgb_frame(driving.road(), x, 0.0, 0.0, (H, W)))
    msg = d.maps[-1]
    assert (msg.info.origin.position.x, msg.info.origin.position.y) == pytest.approx((85.0, -20.0))
    assert cell(msg, 105.0 + 2.0, 0.0) == FREE and cell(msg, 99.0, 0.0) == UNKNOWN
    lookups = [lk for lk in buffer.lookups if lk[:2] == ("odom", "base_link")]
    assert len(lookups) == 6 and all(lk[3] == 0 for lk in lookups)          # never waited
    assert lookups[-1][2] == 1_000_500_000_000                              # at the image's stamp
    assert d.status(lambda s: s.level == DiagnosticStatus.OK).values[1].value == "TF odom <- base_link"


def test_without_a_pose_the_map_is_withheld_and_diagnostics_say_which(graph_factory, green, standin):
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    d = Drive(g)
    d.frame(5.0, driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)), wait=False)
    assert wait_for(lambda: d.masks[""] and d.masks[""][-1].header.stamp.sec == 5, 10.0)   # masks keep flowing
    s = d.status(lambda s: s.level == DiagnosticStatus.WARN)
    assert s.message == (f"drivable_map withheld: no robot pose from odometry on {g.ns}/odom: "
                         f"no odometry received yet") and not d.maps
    d.send_odometry(6.0, 0.0, vx=11.0)
    d.frame(9.0, driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)), wait=False)     # odometry too old
    assert d.status(lambda s: "older than the image" in s.message).message.endswith(
        "the newest odometry is 3.00 s older than the image (at most 0.25 s is carried forward)")
    d.frame(6.1, driving.rgb_frame(driving.road(), 1.1, 0.0, 0.0, (H, W)))       # carried by its twist: 1.1 m
    assert (d.maps[-1].info.origin.position.x, d.maps[-1].info.origin.position.y) == pytest.approx((-19.0, -20.0))

    g2 = graph_factory(green, qos_reliability="reliable", **CAMERA, **MAP)        # TF, no transform
    d2 = Drive(g2, odom=False)
    d2.frame(5.0, driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)), wait=False)
    s = d2.status(lambda s: s.level == DiagnosticStatus.WARN)
    assert s.message.startswith("drivable_map withheld: no transform odom <- base_link: ") and "\n" not in s.message
    assert not d2.maps


def test_a_transform_that_is_not_finite_withholds_the_map(graph_factory, green, standin):
    g = graph_factory(green, qos_reliability="reliable", **CAMERA, **MAP)
    d = Drive(g, odom=False)
    tf = tf2_standin.transform("odom", "base_link", (float("nan"), 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    set_stamp(tf.header, 5.0)
    standin.BUFFERS[-1].set_transform(tf, "test")
    d.frame(5.0, driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)), wait=False)
    assert d.status(lambda s: s.level == DiagnosticStatus.WARN).message == (
        "drivable_map withheld: transform odom <- base_link is not finite or has no rotation") and not d.maps


def test_without_tf2_ros_and_odometry_the_map_says_what_to_set(graph_factory, green, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2_ros", None)
    g = graph_factory(green, qos_reliability="reliable", **CAMERA, **MAP)
    d = Drive(g, odom=False)
    d.frame(5.0, driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)), wait=False)
    assert d.status(lambda s: s.level == DiagnosticStatus.WARN).message == (
        "drivable_map withheld: no robot pose: tf2_ros does not import here for TF odom <- base_link, and "
        "odom_topic is empty (set it to a nav_msgs/Odometry topic in odom)")


@pytest.mark.parametrize("bad, message", [
    ({"frame": "map"}, "odometry on {ns}/odom is in frame 'map', not map_frame 'odom'; ignored"),
    ({"y": float("nan")}, "odometry on {ns}/odom has a pose that is not finite or no rotation; ignored"),
], ids=["other_frame", "nan"])
def test_bad_odometry_is_refused_in_one_line(graph_factory, green, bad, message):
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    d = Drive(g)
    d.send_odometry(5.0, 0.0, **bad)
    d.frame(5.0, driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)), wait=False)
    s = d.status(lambda s: s.level == DiagnosticStatus.WARN)
    assert s.message == "drivable_map withheld: " + message.format(ns=g.ns) and not d.maps


def test_several_cameras_fuse_into_one_map_each_from_its_own_pose(graph_factory, green, standin):
    g = graph_factory(green, qos_reliability="reliable", cameras=["left", "right"], batch_wait_ms=300.0,
                      odom_topic="odom", camera_pose_source="tf", **MAP)
    d = Drive(g, cameras=("left", "right"))
    buffer = standin.BUFFERS[-1]
    for name, yaw in (("left_cam", 0.8), ("right_cam", -0.8)):                # looking 46 degrees aside
        buffer.set_transform_static(tf2_standin.transform(
            "base_link", name, (driving.AHEAD, 0.0, driving.HEIGHT), tf_quaternion(0.0, driving.PITCH, yaw)), "t")
    d.send_odometry(7.0, 50.0)
    rgb = driving.rgb_frame(lambda X, Y: np.ones_like(X, bool), 0.0, 0.0, 0.0, (H, W))   # all road
    d.frame(7.0, rgb, "left", "left_cam", wait=False)
    d.frame(7.0, rgb, "right", "right_cam")
    assert wait_for(lambda: g.node.stats("right")["processed"] == 1 and g.node.stats("left")["processed"] == 1)
    grid = grid_of(d.maps[-1])
    assert g.ns + "/icnet/left/drivable_map" not in {t for t, _ in g.probe.get_topic_names_and_types()}
    left, right = cell(d.maps[-1], 56.0, 6.0), cell(d.maps[-1], 56.0, -6.0)
    assert (left, right) == (FREE, FREE)                         # each seen by one camera only
    assert (grid == FREE).sum() > 2 * 1500 and len(d.maps) == 1   # one map for the batch


def test_trinary_and_graded_values_and_live_switch(graph_factory, green):
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    d = Drive(g)
    scene = driving.road()
    for k in range(4):
        d.send_odometry(1.0 + 0.1 * k, float(k))
        d.frame(1.0 + 0.1 * k, driving.rgb_frame(scene, float(k), 0.0, 0.0, (H, W)))
    trinary = grid_of(d.maps[-1])
    assert set(np.unique(trinary).tolist()) == {UNKNOWN, FREE, OCCUPIED}
    assert g.node.set_parameters([Parameter("map_values", value="graded")])[0].successful
    d.send_odometry(1.4, 4.0)
    d.frame(1.4, driving.rgb_frame(scene, 4.0, 0.0, 0.0, (H, W)))
    graded = grid_of(d.maps[-1])
    values = set(np.unique(graded).tolist())
    assert UNKNOWN in values and values - {UNKNOWN} <= set(range(101)) and len(values) > 5
    road_costs, off_costs = graded[trinary == FREE], graded[trinary == OCCUPIED]
    assert np.median(road_costs[road_costs >= 0]) <= 10 and np.median(off_costs[off_costs >= 0]) >= 90
    bad = g.node.set_parameters([Parameter("map_values", value="binary")])[0]
    assert not bad.successful and "'binary' is not one of trinary, graded" in bad.reason


def test_a_planner_that_reads_only_the_map_gets_it(graph_factory, green):
    # no image output subscribed: the engine may leave out everything at the frame's size
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    maps = g.collect(OccupancyGrid, g.output("drivable_map"))
    image = g.publisher(Image, g.topic("image"))
    info, odom = g.publisher(CameraInfo, g.topic("camera_info")), g.publisher(Odometry, g.topic("odom"))
    g.wait_matched(image, info, odom)
    info.publish(CameraInfo(height=H, width=W, k=driving.intrinsics(W, H).ravel().tolist()))
    assert wait_for(lambda: g.node.cameras[0].info is not None, 5.0)
    odom.publish(odometry(3.0, 0.0))
    assert wait_for(lambda: len(g.node._map.robot._history) == 1, 5.0)
    msg = numpy_to_image(driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)))
    set_stamp(msg.header, 3.0)
    image.publish(msg)
    assert wait_for(lambda: maps, 10.0), "no map"
    grid = grid_of(maps[-1])
    assert cell(maps[-1], 8.0, 0.0) == FREE and cell(maps[-1], 12.0, 4.5) == OCCUPIED and (grid == UNKNOWN).any()


def test_a_late_transient_local_subscriber_gets_the_last_map(graph_factory, green):
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    d = Drive(g)
    d.send_odometry(2.0, 0.0)
    d.frame(2.0, driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W)))
    late = []                                       # as Nav2's StaticLayer subscribes by default
    g.probe.create_subscription(OccupancyGrid, g.output("drivable_map"), late.append, QoSProfile(
        depth=1, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
    assert wait_for(lambda: late, 5.0) and late[0].header.stamp.sec == 2


def test_the_map_is_lazy_and_off_with_an_empty_map_frame(graph_factory, green):
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    masks = g.collect(Image, g.output("drivable_mask"))
    asked = []
    infer = g.node.engine.infer
    g.node.engine.infer = lambda frames, **kw: asked.append(kw["probabilities"]) or infer(frames, **kw)
    pub = g.publisher(Image, g.topic("image"))
    g.wait_matched(pub)
    pub.publish(numpy_to_image(driving.rgb_frame(driving.road(), 0.0, 0.0, 0.0, (H, W))))
    assert wait_for(lambda: masks, 10.0)
    assert asked == [False] and g.node._map.published == 0 and not g.node._map.used   # nobody listens to the map

    off = graph_factory(green, qos_reliability="reliable", odom_topic="odom", map_frame="", **CAMERA)
    topics = {e.topic_name for e in [*off.node.publishers, *off.node.subscriptions]}
    assert off.node._map is None and not any(t.endswith("drivable_map") or t.endswith("/odom") for t in topics)


def test_cleanup_drops_the_map_and_its_odometry_subscription(graph_factory, green):
    g = graph_factory(green, qos_reliability="reliable", odom_topic="odom", **CAMERA, **MAP)
    odom = g.topic("odom")
    count = lambda: g.probe.count_subscribers(odom)      # noqa: E731
    assert wait_for(lambda: count() == 1, 5.0)
    assert g.node.trigger_deactivate() == R.SUCCESS and g.node._map is not None and count() == 1
    assert g.node.trigger_cleanup() == R.SUCCESS and g.node._map is None
    assert wait_for(lambda: count() == 0, 5.0)
    assert g.configure() and g.node._map is not None and g.node._map.published == 0   # a fresh map
    assert wait_for(lambda: count() == 1, 5.0)


@pytest.mark.parametrize("params, message", [
    ({"map_frame": "base_link"}, "parameter 'map_frame': 'base_link' is base_frame; the map needs a fixed frame "
                                 "such as odom, which the robot moves in ('' turns the map off)"),
    ({"map_frame": "/odom"}, "parameter 'map_frame': '/odom' is not a TF frame id (no leading '/' or spaces)"),
    ({"map_size": 500.0, "map_resolution": 0.05}, "parameter 'map_size' and 'map_resolution': a map of 500 m at "
                                                  "0.05 m is 10000 x 10000 cells, more than 4,000,000: use a smaller "
                                                  "size or a coarser resolution"),
    ({"odom_topic": "odom topic"}, "parameter 'odom_topic': 'odom topic' is not a ROS topic name"),
    ({"map_decay_s": 0.0}, "parameter 'map_decay_s': value 0.0 is invalid (must be within [0.1, 3600.0])"),
], ids=["base_frame", "slash", "too_large", "topic", "decay"])
def test_bad_map_parameters_fail_configure_in_one_line(graph_factory, params, message):
    g = graph_factory(autostart=False, **params)
    assert not g.configure()
    assert g.node.last_error == message
