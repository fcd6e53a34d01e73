"""
Training pairs from ROS bags (``bag:PATH``).

Opened by ``reader.py`` (``rosbags``): a ROS 1 ``.bag`` file or a ROS 2 bag directory
(sqlite3 or MCAP storage).  No ROS install is needed.

An image topic (sensor_msgs Image or CompressedImage) is paired with a mask topic (mono8
class ids, or rgb8/bgr8 in KITTI road colours; raw or PNG-compressed) by header stamp:
each image takes the nearest mask no more than ``max_dt`` seconds away.

The bag is read once; paired frames are kept in memory as PNG/JPEG bytes (compressed
messages as they came), so the dataset is random-access and cheap to share with
DataLoader workers.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import cv2
import numpy as np

from . import reader as bag_reader
from .reader import COMPRESSED, IMAGE
from .. import image_io
from ..image_io import DataError, decode_kitti_gt, Encoded, read_id_mask, read_image
from ...classes import ClassSet, KITTI_ROAD
from ...optional import MissingDependency


def _raw_array(msg, name: str, mask: bool = False) -> np.ndarray:
    """
    Return H x W x C uint8 in RGB order (or ids) from a sensor_msgs/Image.

    C is 1 or 3.  Every camera encoding the node takes (image_io) is read; masks only as
    8-bit ids or colours.
    """
    if mask and msg.encoding.strip().lower() not in image_io.DIRECT:
        raise DataError(f"{name} has encoding {msg.encoding!r}; a mask must be mono8 class ids or "
                        f"rgb8/bgr8 colours")
    try:
        arr, order = image_io.decode_raw(msg.encoding, msg.width, msg.height, msg.step, msg.data,
                                         bool(getattr(msg, "is_bigendian", 0)))
    except image_io.ImageError as e:
        raise DataError(f"{name}: {e}") from None
    arr = arr[..., None] if arr.ndim == 2 else (arr[..., ::-1] if order == "bgr" else arr)
    return np.ascontiguousarray(arr)


def _encode(msg, msgtype: str, name: str, mask: bool = False) -> tuple[Encoded, int]:
    """Return (Encoded frame, channels) for one message; compressed ones keep their bytes."""
    if msgtype == COMPRESSED:
        data = bytes(msg.data)
        probe = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if probe is None:
            raise DataError(f"{name} cannot be decoded (format {msg.format!r}; jpeg or png expected)")
        return Encoded(data, name), 1 if probe.ndim == 2 else probe.shape[2]
    arr = _raw_array(msg, name, mask)
    ch = arr.shape[2]
    out = arr[..., 0] if ch == 1 else arr[..., ::-1]  # cv2 writes BGR
    ok, buf = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise DataError(f"{name} could not be re-encoded")
    return Encoded(buf.tobytes(), name), ch


def read_bag_mask(src: Encoded) -> np.ndarray:
    """Class ids from a mask frame: single-channel ids as they are, colour in KITTI colours."""
    probe = cv2.imdecode(np.frombuffer(src.data, np.uint8), cv2.IMREAD_UNCHANGED)
    if probe is not None and probe.ndim == 3:
        return decode_kitti_gt(read_image(src))
    return read_id_mask(src)


def _open(path: Path):
    try:
        return bag_reader.open_bag(path, f"reading the bag {path}", fallback_types=False)
    except MissingDependency as e:
        raise DataError(str(e)) from None
    except DataError:
        raise
    except Exception as e:  # rosbags raises several unrelated error types for bad files
        raise DataError(f"bag {path} cannot be read as a ROS 1 or ROS 2 bag ({e})") from None


def _read_frames(path: Path, image_topic: str | None, mask_topic: str | None):
    """Return (the bag's path, {topic: [(stamp, Encoded, channels)]}) for its image and mask topics."""
    reader = _open(path)
    path = bag_reader.bag_root(path)  # errors name the bag, not one of its storage files
    try:
        if not reader.connections or reader.message_count == 0:
            raise DataError(f"bag {path} is empty (it holds no messages)")
        if not image_topic or not mask_topic:
            raise DataError(f"bag {path} needs --image-topic and --mask-topic; its topics are: "
                            f"{bag_reader.topic_list(reader)}")
        wanted = []
        for role, topic in (("image", image_topic), ("mask", mask_topic)):
            found = [c for c in reader.connections if c.topic == topic]
            if not found:
                raise DataError(f"bag {path} has no {role} topic {topic}; "
                                f"its topics are: {bag_reader.topic_list(reader)}")
            bad = [c.msgtype for c in found if c.msgtype not in bag_reader.IMAGE_TYPES]
            if bad:
                raise DataError(f"topic {topic} in bag {path} carries {bad[0]}, not {IMAGE} or {COMPRESSED}")
            wanted += found
        frames: dict[str, list[tuple[float, Encoded, int]]] = {image_topic: [], mask_topic: []}
        for conn, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            t = bag_reader.stamp(msg)
            enc, ch = _encode(msg, conn.msgtype, f"{conn.topic} message stamped {t:.3f} s in {path}",
                              mask=conn.topic == mask_topic)
            frames[conn.topic].append((t, enc, ch))
    finally:
        reader.close()
    return path, frames


def bag_samples(path: Path, image_topic: str | None, mask_topic: str | None, max_dt: float,
                classes: ClassSet | None):
    """([(image, mask) Encoded pairs], label decoder, class set) for ``bag:PATH``."""
    path, frames = _read_frames(path, image_topic, mask_topic)
    images, masks = frames[image_topic], sorted(frames[mask_topic], key=lambda f: f[0])
    for topic, got in ((image_topic, images), (mask_topic, masks)):
        if not got:
            raise DataError(f"topic {topic} in bag {path} has no messages")
    stamps = [m[0] for m in masks]
    pairs = []
    for t, enc, _ in sorted(images, key=lambda f: f[0]):
        j = bisect.bisect_left(stamps, t)
        near = [k for k in (j - 1, j) if 0 <= k < len(masks)]
        k = min(near, key=lambda k: abs(stamps[k] - t))
        if abs(stamps[k] - t) <= max_dt:
            pairs.append((enc, masks[k][1]))
    if not pairs:
        raise DataError(f"bag {path}: no {image_topic} message has a {mask_topic} mask stamped within "
                        f"--max-dt {max_dt} s ({len(images)} images, {len(masks)} masks)")
    colour = any(m[2] >= 3 for m in masks)
    if colour:
        if classes is not None and classes.names != KITTI_ROAD.names:
            raise DataError(f"topic {mask_topic} in bag {path} holds colour masks, read as KITTI road colours; "
                            f"--classes must then be not_road/road")
        return pairs, read_bag_mask, KITTI_ROAD
    return pairs, read_bag_mask, classes or KITTI_ROAD
