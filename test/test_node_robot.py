"""
The node on a robot, over real DDS (issue 27): camera pose from TF, ~/obstacles for Nav2, the ego mask.

TF comes through test/tf2_standin.py, a STAND-IN for tf2_ros (no wheel on the package
index), injected as sys.modules["tf2_ros"]; the test fills its buffer as the real
TransformListener's callbacks would.  Images, CameraInfo and every output travel over DDS.
The hand-wired green-road model makes green pixels road and red ones not.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import green_road_checkpoint_file, HAVE_RCLPY, next_status, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.skipif(not HAVE_RCLPY, reason="rclpy does not import")]

if HAVE_RCLPY:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from nav_msgs.msg import OccupancyGrid
    from rclpy.lifecycle import TransitionCallbackReturn as R
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image, PointCloud2, PointField

    from icnet_ros.ground import geometry
    from icnet_ros.ros.conversions import numpy_to_image
    from icnet_ros.ros.pointcloud import msg_points
    from test_camera_pose import tf_quaternion
    from test_node import camera_info, image_publisher_with_info
    import tf2_standin

H, W, F = 96, 128, 100.0
K = np.array([[F, 0.0, W / 2], [0.0, F, H / 2], [0.0, 0.0, 1.0]])
SPEC = {"grid_x_max": 30.0}


@pytest.fixture(scope="module")
def green(tmp_path_factory):
    return green_road_checkpoint_file(tmp_path_factory.mktemp("robot") / "green.pt")


def road(rows_from: int = 50, left: int = 30, right: int = 98):
    """Green road from rows_from down between two columns, red (not road) elsewhere."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[rows_from:, left:right] = (0, 255, 0)
    return rgb


def start(g, *outputs, camera=""):
    kind = {"obstacles": PointCloud2, "free_space": PointCloud2, "drivable_area": OccupancyGrid}
    boxes = [g.collect(kind.get(o, Image), g.output(o, camera)) for o in outputs]
    g.diags = g.collect(DiagnosticArray, "/diagnostics")
    return boxes


def send(pub, rgb, sec, frame_id="cam"):
    msg = numpy_to_image(rgb)
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    pub.publish(msg)


def newest(box, sec, timeout=10.0):
    assert wait_for(lambda: box and box[-1].header.stamp.sec == sec, timeout), f"no output for frame {sec}"
    return box[-1]


def mono(msg):
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width)


def grid_of(msg):
    return np.array(msg.data, np.int8).reshape(msg.info.height, msg.info.width)


def status(g, want, timeout=4.0):
    """Return the node's first DiagnosticStatus from now on for which want(status) holds."""
    return next_status(g.diags, lambda s: s.name.startswith("icnet") and want(s), timeout)


def values(s):
    return {kv.key: kv.value for kv in s.values}


def on_cells(points, grid, spec):
    rows = np.floor((points[:, 1] - spec.y_min) / spec.resolution).astype(int)
    cols = np.floor((points[:, 0] - spec.x_min) / spec.resolution).astype(int)
    return grid[rows, cols]


@pytest.mark.parametrize("pose", [(1.5, 0.05, 0.0, 0.0, 0.0, 0.0), (1.8, 0.15, 0.1, 0.3, 1.2, -0.4)],
                         ids=["level", "rolled_yawed_offset"])
def test_tf_pose_gives_the_grid_of_the_same_pose_from_parameters(graph_factory, green, standin, pose):
    height, pitch, roll, yaw, x, y = pose
    g = graph_factory(green, qos_reliability="reliable", camera_pose_source="tf", **SPEC)
    masks, grids, clouds, free = start(g, "drivable_mask", "drivable_area", "obstacles", "free_space")
    pub = image_publisher_with_info(g, H, W, F)
    g.wait_matched(pub)
    standin.BUFFERS[-1].set_transform_static(
        tf2_standin.transform("base_link", "cam", (x, y, height), tf_quaternion(roll, pitch, yaw)), "test")
    send(pub, road(), 1)
    drivable = mono(newest(masks, 1)) > 0
    grid = grid_of(newest(grids, 1))
    spec = geometry.GridSpec(**{k[5:]: v for k, v in SPEC.items()})
    expected = geometry.occupancy_grid(drivable, geometry.ground_homography(K, height, pitch, roll, yaw, x, y), spec)
    np.testing.assert_array_equal(grid, expected)
    assert (grid == geometry.FREE).sum() > 500 and (grid == geometry.OCCUPIED).sum() > 500

    cloud = newest(clouds, 1)
    assert cloud.header.frame_id == "base_link" and cloud.header.stamp.sec == 1
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, PointField.FLOAT32, 1), ("y", 4, PointField.FLOAT32, 1), ("z", 8, PointField.FLOAT32, 1)]
    assert (cloud.height, cloud.point_step, cloud.row_step, cloud.is_bigendian, cloud.is_dense) == (
        1, 12, 12 * cloud.width, False, True)
    points = msg_points(cloud)
    assert 0 < len(points) <= 1000 and (points[:, 2] == np.float32(0.1)).all()
    assert (on_cells(points, grid, spec) == geometry.OCCUPIED).all()      # never a drivable or unseen cell
    ends = msg_points(newest(free, 1))
    assert newest(free, 1).header.frame_id == "base_link" and (on_cells(ends, grid, spec) == geometry.FREE).all()
    assert all(lookup[3] == 0 for lookup in standin.BUFFERS[-1].lookups), "a lookup waited for TF"


def test_missing_transform_withholds_the_grid_and_says_which(graph_factory, green, standin):
    g = graph_factory(green, qos_reliability="reliable", camera_pose_source="tf", **SPEC)
    masks, grids, clouds = start(g, "drivable_mask", "drivable_area", "obstacles")
    pub = image_publisher_with_info(g, H, W, F)
    g.wait_matched(pub)
    send(pub, road(), 1)
    newest(masks, 1)                                    # the masks keep flowing
    s = status(g, lambda s: s.level == DiagnosticStatus.WARN)
    assert "\n" not in s.message
    assert s.message.startswith("no transform base_link <- cam: ") and "does not exist" in s.message
    assert not grids and not clouds

    buffer = standin.BUFFERS[-1]                        # the transform appears later
    buffer.set_transform(tf2_standin.transform("base_link", "cam", (0, 0, 1.5), tf_quaternion(0, 0.05, 0), 1), "t")
    send(pub, road(), 2)
    newest(grids, 2), newest(clouds, 2)
    s = status(g, lambda s: s.level == DiagnosticStatus.OK)
    assert values(s)["camera pose"] == "tf" and values(s)["drivable_area withheld"] == ""

    assert g.node.set_parameters([Parameter("camera_frame", value="cam_optical")])[0].successful
    send(pub, road(), 3)
    newest(masks, 3)
    assert status(g, lambda s: s.level == DiagnosticStatus.WARN).message.startswith(
        "no transform base_link <- cam_optical")
    assert grids[-1].header.stamp.sec == 2

    listener = standin.LISTENERS[-1]
    assert g.node.trigger_deactivate() == R.SUCCESS and not listener.unregistered
    assert g.node.trigger_cleanup() == R.SUCCESS and listener.unregistered     # torn down at cleanup


def test_refresh_zero_looks_up_each_frames_stamp(graph_factory, green, standin):
    g = graph_factory(green, qos_reliability="reliable", camera_pose_source="tf", camera_pose_refresh_s=0.0, **SPEC)
    masks, grids = start(g, "drivable_mask", "drivable_area")
    pub = image_publisher_with_info(g, H, W, F)
    g.wait_matched(pub)
    buffer = standin.BUFFERS[-1]
    for sec, pitch in ((1, 0.05), (2, 0.2)):       # a pan-tilt head pitching down
        pose = tf2_standin.transform("base_link", "cam", (0, 0, 1.5), tf_quaternion(0, pitch, 0), sec)
        buffer.set_transform(pose, "t")
    send(pub, road(), 2)
    drivable = mono(newest(masks, 2)) > 0
    spec = geometry.GridSpec(x_max=30.0)
    np.testing.assert_array_equal(grid_of(newest(grids, 2)), geometry.occupancy_grid(
        drivable, geometry.ground_homography(K, 1.5, 0.2), spec))
    assert buffer.lookups[-1][2] == 2_000_000_000 and buffer.lookups[-1][3] == 0
    send(pub, road(), 5)                            # TF has nothing for this stamp yet: withheld, not waited for
    newest(masks, 5)
    s = status(g, lambda s: s.level == DiagnosticStatus.WARN)
    assert "extrapolation into the future" in s.message and grids[-1].header.stamp.sec == 2


def assert_grid_from_camera_parameters(g) -> None:
    """One frame through the node: its grid is the one camera_height 1.5 gives, with no pose from TF."""
    masks, grids = start(g, "drivable_mask", "drivable_area")
    pub = image_publisher_with_info(g, H, W, F)
    g.wait_matched(pub)
    send(pub, road(), 1)
    drivable = mono(newest(masks, 1)) > 0
    np.testing.assert_array_equal(grid_of(newest(grids, 1)), geometry.occupancy_grid(
        drivable, geometry.ground_homography(K, 1.5), geometry.GridSpec(x_max=30.0)))


def test_without_tf2_ros_auto_uses_the_parameters_and_tf_is_refused(graph_factory, green, monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "tf2_ros", None)         # import tf2_ros raises ImportError
    g = graph_factory(green, qos_reliability="reliable", camera_height=1.5, **SPEC)
    log = capfd.readouterr().err
    assert log.count("tf2_ros does not import here") == 1 and "uses the camera_* parameters" in log
    assert_grid_from_camera_parameters(g)
    assert values(status(g, lambda s: values(s)["frames processed"] == "1"))["camera pose"] == "parameters"

    g2 = graph_factory(green, autostart=False, camera_pose_source="tf")
    assert not g2.configure()
    err = g2.node.last_error
    assert err.startswith("parameter 'camera_pose_source': 'tf' needs the tf2_ros Python module") and "\n" not in err


def test_auto_with_tf_but_no_transform_falls_back_to_the_parameters(graph_factory, green, standin):
    g = graph_factory(green, qos_reliability="reliable", camera_height=1.5, **SPEC)
    assert_grid_from_camera_parameters(g)
    s = status(g, lambda s: values(s)["frames processed"] == "1")
    assert s.level == DiagnosticStatus.OK and values(s)["camera pose"].startswith("parameters (no transform base_link")


def test_ego_mask_per_camera(graph_factory, green):
    # left: the bottom quarter is the robot's hood; right: no mask.  Every pixel is green (road).
    g = graph_factory(green, qos_reliability="reliable", cameras=["left", "right"], batch_wait_ms=200.0,
                      ego_mask=["bottom:0.25", ""], camera_height=1.5, **SPEC)
    boxes = {c: start(g, "drivable_mask", "drivable_confidence", camera=c) for c in ("left", "right")}
    grids, clouds = start(g, "drivable_area", "obstacles", camera="left")
    pubs = {c: g.publisher(Image, g.topic(f"{c}/image")) for c in ("left", "right")}
    info = g.publisher(type(camera_info(H, W)), g.topic("left/camera_info"))
    g.wait_matched(info, *pubs.values())
    info.publish(camera_info(H, W, F))
    assert wait_for(lambda: g.node.cameras[0].info is not None, 5.0)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 1] = 255
    for c in ("left", "right"):
        send(pubs[c], rgb, 1, c)
    hood = H - int(round(H * 0.25))                      # row 72 on
    left_mask, left_conf = (mono(newest(b, 1)) for b in boxes["left"])
    right_mask, right_conf = (mono(newest(b, 1)) for b in boxes["right"])
    assert (left_mask[hood:] == 0).all() and (left_conf[hood:] == 0).all()     # never drivable, no confidence
    assert (left_mask[:hood] == 255).all() and (left_conf[:hood] > 200).all()
    assert (right_mask == 255).all()

    grid = grid_of(newest(grids, 1))
    spec = geometry.GridSpec(x_max=30.0)
    hp = geometry.ground_homography(K, 1.5)
    projector = geometry.GroundProjector(hp, spec, (H, W))
    ego = np.zeros((H, W), bool)
    ego[hood:] = True
    through_hood = projector.sample(ego, fill=False)
    assert through_hood.sum() > 100 and (grid[through_hood] == geometry.UNKNOWN).all()   # unseen, not 'not drivable'
    np.testing.assert_array_equal(grid, projector.occupancy(left_mask > 0, ego))
    # nothing but road is seen: no obstacle points, where the hood (zeroed) would have been a wall of them
    assert len(msg_points(newest(clouds, 1))) == 0
    from icnet_ros.ground.obstacles import boundary_points

    assert len(boundary_points(projector.occupancy(left_mask > 0), spec, (0.0, 0.0), 0.0, 1000)) > 10


def test_an_unreadable_ego_mask_fails_configure_naming_it(graph_factory, tmp_path):
    (tmp_path / "hood.png").write_text("not an image")
    g = graph_factory(autostart=False, ego_mask=[str(tmp_path / "hood.png")])
    assert not g.configure()
    err = g.node.last_error
    assert err.startswith("parameter 'ego_mask': ego mask file ") and "hood.png is not an image" in err
    assert "\n" not in err


def test_a_withheld_grid_is_a_warning_naming_why():
    from types import SimpleNamespace

    from icnet_ros.ros.diagnostics import camera_status, Stats

    s = Stats()
    s.start_window(0.0)
    s.received, s.pose = 3, "tf"
    s.grid_problem = 'no transform base_link <- cam: "cam" passed to lookupTransform argument source_frame'
    status = camera_status("icnet: camera", s, 1.0, SimpleNamespace(device="cpu", precision="fp32", backend="torch"))
    assert (status.level, status.message) == (DiagnosticStatus.WARN, s.grid_problem)
    assert values(status)["drivable_area withheld"] == s.grid_problem and values(status)["camera pose"] == "tf"
    s.grid_problem = ""
    status = camera_status("icnet: camera", s, 2.0, SimpleNamespace(device="cpu", precision="fp32", backend="torch"))
    assert status.level == DiagnosticStatus.OK
