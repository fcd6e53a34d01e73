"""
Bags written with rosbags, read back by ``bag:PATH`` and trained on through the CLI.

Formats: ROS 1, ROS 2 MCAP and ROS 2 sqlite3, with raw and compressed images.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from icnet_ros.data.datasets import DataError, open_dataset
from icnet_ros.data.image_io import encode_raw
from icnet_ros.inference.checkpoint import load_checkpoint
from icnet_ros.tools.train import main as train_main
from synthetic import kitti_colours, scene

torch.set_num_threads(1)
pytest.importorskip("rosbags")
rosbag1 = pytest.importorskip("rosbags.rosbag1")  # imported here, not above: skipped without rosbags
rosbag2 = pytest.importorskip("rosbags.rosbag2")
typesys = pytest.importorskip("rosbags.typesys")
Writer1, Writer2, StoragePlugin = rosbag1.Writer, rosbag2.Writer, rosbag2.StoragePlugin
get_typestore, Stores = typesys.get_typestore, typesys.Stores

IMAGE, COMPRESSED = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"
H, W = 48, 64


def header(ts, t: float):
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    stamp = Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))
    if "seq" in Header.__dataclass_fields__:  # ROS 1
        return Header(seq=0, stamp=stamp, frame_id="cam")
    return Header(stamp=stamp, frame_id="cam")


def raw(ts, t, array: np.ndarray, encoding: str):
    ch = 1 if array.ndim == 2 else array.shape[2]
    return ts.types[IMAGE](header=header(ts, t), height=array.shape[0], width=array.shape[1], encoding=encoding,
                           is_bigendian=0, step=array.shape[1] * ch, data=np.ascontiguousarray(array).reshape(-1))


def driver_raw(ts, t, rgb: np.ndarray, encoding: str):
    data, step = encode_raw(rgb, encoding)
    return ts.types[IMAGE](header=header(ts, t), height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                           is_bigendian=0, step=step, data=data.view(np.uint8).reshape(-1))


def compressed(ts, t, array_bgr_or_ids: np.ndarray, fmt: str):
    ok, buf = cv2.imencode("." + fmt, array_bgr_or_ids)
    assert ok
    return ts.types[COMPRESSED](header=header(ts, t), format=fmt, data=buf.reshape(-1))


def frames(n=4):
    for i in range(n):
        image, road = scene(H, W, i)
        yield 10.0 + i * 0.1, image, road


def write_bag(path: Path, kind: str, image_kind: str, mask_kind: str, n=4, extra_image=True):
    """kind: ros1 | mcap | sqlite3; image_kind: rgb8 | bgr8 | jpeg | png; mask_kind: mono8 | rgb8 | png."""
    ts = get_typestore(Stores.ROS1_NOETIC if kind == "ros1" else Stores.ROS2_HUMBLE)
    serialize = ts.serialize_ros1 if kind == "ros1" else ts.serialize_cdr
    writer = Writer1(path) if kind == "ros1" else Writer2(
        path, version=9, storage_plugin=StoragePlugin.MCAP if kind == "mcap" else StoragePlugin.SQLITE3)
    img_type = COMPRESSED if image_kind in ("jpeg", "png") else IMAGE
    mask_type = COMPRESSED if mask_kind == "png" else IMAGE
    with writer as w:
        ci = w.add_connection("/camera/image", img_type, typestore=ts)
        cm = w.add_connection("/camera/mask", mask_type, typestore=ts)
        w.add_connection("/imu", "sensor_msgs/msg/Imu", typestore=ts)
        items = list(frames(n))
        if extra_image:  # an image with no mask near it: left out
            items.append((99.0, items[0][1], None))
        for t, image, road in items:
            if image_kind == "rgb8":
                msg = raw(ts, t, image, "rgb8")
            elif image_kind == "bgr8":
                msg = raw(ts, t, image[..., ::-1], "bgr8")
            elif img_type == IMAGE:  # a camera driver's encoding: bayer_rggb8, rgb16, yuv422 ...
                msg = driver_raw(ts, t, image, image_kind)
            else:
                msg = compressed(ts, t, image[..., ::-1], image_kind)
            w.write(ci, int(t * 1e9), serialize(msg, img_type))
            if road is None:
                continue
            tm = t + 0.01  # masks stamped 10 ms after their image
            if mask_kind == "mono8":
                m = raw(ts, tm, road, "mono8")
            elif mask_kind == "rgb8":
                m = raw(ts, tm, kitti_colours(road, 4), "rgb8")
            elif mask_type == IMAGE:
                m = driver_raw(ts, tm, kitti_colours(road, 4), mask_kind)
            else:
                m = compressed(ts, tm, road, "png")
            w.write(cm, int(tm * 1e9), serialize(m, mask_type))
    return path


def train_bag(tmp_path, bag, capfd, *extra):
    out = tmp_path / "run"
    rc = train_main(["--data", f"bag:{bag}", "--image-topic", "/camera/image", "--mask-topic", "/camera/mask",
                     "--out", str(out), "--model", "r18", "--width", "0.25", "--crop", "32x48", "--batch-size", "2",
                     "--epochs", "1", "--max-iters", "2", "--workers", "0", "--preview", "1", *extra])
    return rc, capfd.readouterr().err.strip(), out


@pytest.mark.parametrize("kind,image_kind,mask_kind", [
    ("ros1", "rgb8", "mono8"),
    ("mcap", "png", "rgb8"),
    ("sqlite3", "bgr8", "png"),
    ("mcap", "jpeg", "mono8"),
])
def test_bags_pair_by_stamp_and_train(tmp_path, capfd, kind, image_kind, mask_kind):
    bag = write_bag(tmp_path / ("b.bag" if kind == "ros1" else "b"), kind, image_kind, mask_kind)
    ds = open_dataset(f"bag:{bag}", image_topic="/camera/image", mask_topic="/camera/mask", max_dt=0.05)
    assert len(ds) == 4  # the image at 99 s has no mask within 50 ms
    for i, (_, image, road) in enumerate(frames(4)):
        got_image, label = ds.load(i)
        if image_kind == "jpeg":
            assert np.abs(got_image.astype(int) - image).mean() < 12
        else:
            np.testing.assert_array_equal(got_image, image)
        if mask_kind == "rgb8":
            expect = road.copy()
            expect[:4] = 255  # black rows of the KITTI-colour mask are ignored
            np.testing.assert_array_equal(label, expect)
        else:
            np.testing.assert_array_equal(label, road)
    rc, err, out = train_bag(tmp_path, bag, capfd)
    assert rc == 0, err
    model, meta, _ = load_checkpoint(out / "last.pt")
    assert meta.classes.names == ("not_road", "road")
    assert (out / "best.pt").is_file() and (out / "previews" / "epoch_001.png").is_file()


@pytest.mark.parametrize("image_kind,tolerance", [("rgb16", 0), ("bayer_grbg8", 12), ("yuv422_yuy2", 8),
                                                  ("nv21", 12)])
def test_bags_read_camera_driver_encodings(tmp_path, image_kind, tolerance):
    bag = write_bag(tmp_path / "b", "mcap", image_kind, "mono8", n=2)
    ds = open_dataset(f"bag:{bag}", image_topic="/camera/image", mask_topic="/camera/mask", max_dt=0.05)
    for i, (_, image, road) in enumerate(frames(2)):
        got_image, label = ds.load(i)
        assert got_image.shape == image.shape and np.abs(got_image.astype(int) - image).mean() <= tolerance
        np.testing.assert_array_equal(label, road)


def test_bag_mask_must_be_ids_or_colours(tmp_path):
    bag = write_bag(tmp_path / "b", "mcap", "rgb8", "bayer_rggb8", n=2)
    with pytest.raises(DataError, match="has encoding 'bayer_rggb8'; a mask must be mono8 class ids or rgb8/bgr8"):
        open_dataset(f"bag:{bag}", image_topic="/camera/image", mask_topic="/camera/mask", max_dt=0.05)


def test_ros2_storage_file_means_its_bag(tmp_path):
    bag = write_bag(tmp_path / "b", "mcap", "png", "mono8", n=2)
    (storage,) = bag.glob("*.mcap")
    assert len(open_dataset(f"bag:{storage}", image_topic="/camera/image", mask_topic="/camera/mask")) == 2


def test_max_dt_too_small_pairs_nothing(tmp_path):
    bag = write_bag(tmp_path / "b.bag", "ros1", "rgb8", "mono8", n=2)
    with pytest.raises(DataError, match=r"no /camera/image message has a /camera/mask mask stamped within "
                                        r"--max-dt 0.001 s \(3 images, 2 masks\)"):
        open_dataset(f"bag:{bag}", image_topic="/camera/image", mask_topic="/camera/mask", max_dt=0.001)


def test_missing_topic_lists_the_bags_topics(tmp_path, capfd):
    bag = write_bag(tmp_path / "b", "mcap", "png", "mono8", n=2)
    rc = train_main(["--data", f"bag:{bag}", "--image-topic", "/camera/image", "--mask-topic", "/labels",
                     "--out", str(tmp_path / "run"), "--workers", "0"])
    err = capfd.readouterr().err.strip()
    assert rc == 2
    assert err == (f"train: error: bag {bag} has no mask topic /labels; its topics are: "
                   f"/camera/image ({COMPRESSED}), /camera/mask ({IMAGE}), /imu (sensor_msgs/msg/Imu)")
    rc = train_main(["--data", f"bag:{bag}", "--out", str(tmp_path / "run"), "--workers", "0"])
    err = capfd.readouterr().err.strip()
    assert rc == 2 and "needs --image-topic and --mask-topic; its topics are: /camera/image" in err
    rc = train_main(["--data", f"bag:{bag}", "--image-topic", "/imu", "--mask-topic", "/camera/mask",
                     "--out", str(tmp_path / "run"), "--workers", "0"])
    err = capfd.readouterr().err.strip()
    assert rc == 2 and err == (f"train: error: topic /imu in bag {bag} carries sensor_msgs/msg/Imu, "
                               f"not {IMAGE} or {COMPRESSED}")


def test_empty_bag(tmp_path, capfd):
    ts = get_typestore(Stores.ROS2_HUMBLE)
    bag = tmp_path / "empty"
    with Writer2(bag, version=9) as w:
        w.add_connection("/camera/image", IMAGE, typestore=ts)
    rc = train_main(["--data", f"bag:{bag}", "--image-topic", "/camera/image", "--mask-topic", "/camera/mask",
                     "--out", str(tmp_path / "run"), "--workers", "0"])
    err = capfd.readouterr().err.strip()
    assert rc == 2 and err == f"train: error: bag {bag} is empty (it holds no messages)"


def test_not_a_bag(tmp_path, capfd):
    fake = tmp_path / "x.bag"
    fake.write_bytes(b"not a bag at all")
    rc = train_main(["--data", f"bag:{fake}", "--image-topic", "/a", "--mask-topic", "/b",
                     "--out", str(tmp_path / "run"), "--workers", "0"])
    err = capfd.readouterr().err.strip()
    assert rc == 2 and err.startswith(f"train: error: bag {fake} cannot be read as a ROS 1 or ROS 2 bag")
    assert len(err.splitlines()) == 1
    rc = train_main(["--data", f"bag:{tmp_path / 'gone'}", "--image-topic", "/a", "--mask-topic", "/b",
                     "--out", str(tmp_path / "run"), "--workers", "0"])
    assert rc == 2 and capfd.readouterr().err.strip() == f"train: error: bag {tmp_path / 'gone'} does not exist"
