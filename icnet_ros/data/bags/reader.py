"""
Camera bags read with ``rosbags``, no ROS install needed.

A ROS 1 ``.bag`` file or a ROS 2 bag directory (sqlite3 or MCAP storage; one of its
storage files means the directory).

Shared by training's ``bag:PATH`` data (``dataset.py``) and the replay player
(``ros/player.py``): opening a bag, naming its topics in errors, header stamps, and the
camera stream ``play`` replays (one image topic and the camera_info next to it).  A
missing ``rosbags`` is a MissingDependency naming it.  A bag rosbags refuses (cut off by a
crash: no index, no metadata.yaml, a half-written last chunk) is read record by record up
to its last whole message by ``recover.py``, with one warning line saying so; one with
no whole message is a DataError.
"""

from __future__ import annotations

from pathlib import Path
import sys

from . import recover
from ..image_io import DataError
from ...optional import missing, MissingDependency

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)
STORAGE_SUFFIXES = recover.STORAGE_SUFFIXES


def is_bag(path: Path) -> bool:
    """Return whether ``path`` is a .bag, .mcap or .db3 file or a ROS 2 bag folder (with or without metadata.yaml)."""
    if path.suffix in (".bag", *STORAGE_SUFFIXES) or (path / "metadata.yaml").is_file():
        return True
    return path.is_dir() and any(p.suffix in STORAGE_SUFFIXES for p in path.iterdir())


def warn_stderr(line: str) -> None:
    """Where a damaged bag's one warning line goes by default (train, evaluate)."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def bag_root(path: Path) -> Path:
    """Return a ROS 2 bag's directory (a bag is its directory, not one of its storage files)."""
    if path.suffix in STORAGE_SUFFIXES and (path.parent / "metadata.yaml").is_file():
        return path.parent
    return path


def open_bag(path: Path, needed_for: str, fallback_types: bool = True, warn=warn_stderr):
    """
    Return an open rosbags AnyReader, or a recover reader for a damaged bag (the caller closes it).

    ``fallback_types``: read ROS 2 bags that hold no message definitions with ROS 2
    kilted's (play does; training's bag: data has not so far).  ``warn`` gets the one line
    saying what was recovered from a damaged bag.  MissingDependency naming ``needed_for``
    without rosbags, DataError for a path that does not exist or a bag with no readable
    message.
    """
    try:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore
    except ImportError as e:
        raise MissingDependency(missing(e, needed_for)) from None
    if not path.exists():
        raise DataError(f"bag {path} does not exist")
    types = get_typestore(Stores.ROS2_KILTED) if fallback_types else None
    try:
        reader = AnyReader([bag_root(path)], default_typestore=types)
        reader.open()
    except Exception as e:  # rosbags raises several unrelated error types for damaged bags
        return recover.open_damaged(bag_root(path), e, types, warn)
    damage = recover.looks_damaged(bag_root(path))   # what rosbags opens without noticing
    if damage:
        reader.close()
        return recover.open_damaged(bag_root(path), ValueError(damage), types, warn, why=damage)
    return reader


def topic_list(reader) -> str:
    """'topic (type), ...' of every topic in an open bag, for error messages."""
    seen = sorted({(c.topic, c.msgtype) for c in reader.connections})
    return ", ".join(f"{t} ({m})" for t, m in seen) or "none"


def stamp(msg) -> float:
    """Return a message's header stamp in seconds."""
    return float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9


def camera_info_topic(image_topic: str) -> str:
    """Return the camera_info next to an image topic: /cam/image_raw[/compressed] -> /cam/camera_info."""
    ns = image_topic.rsplit("/", 2)[0] if image_topic.endswith("/compressed") else image_topic.rsplit("/", 1)[0]
    return f"{ns}/camera_info"


def camera_frames(path: Path, image_topic: str = "", needed_for: str = "", warn=warn_stderr):
    """
    Yield (name, image message, latest CameraInfo or None) for one image topic of a bag.

    ``image_topic``, or the first Image/CompressedImage topic.  Names are 'TOPIC#N', N
    counting the camera's messages (images and camera_info) in bag order.  DataError
    when the bag has no such topic.
    """
    reader = open_bag(path, needed_for or f"reading the bag {path}", warn=warn)
    try:
        images = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        if image_topic:
            images = [c for c in images if c.topic == image_topic]
        if not images:
            wanted = f"image topic {image_topic!r}" if image_topic else "Image or CompressedImage topic"
            raise DataError(f"bag {path} has no {wanted}; its topics: {topic_list(reader)}")
        topic = images[0].topic
        images = [c for c in images if c.topic == topic]
        infos = [c for c in reader.connections
                 if c.msgtype == CAMERA_INFO and c.topic == camera_info_topic(topic)]
        info = None
        for n, (conn, _, raw) in enumerate(reader.messages(connections=images + infos)):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.msgtype == CAMERA_INFO:
                info = msg
                continue
            yield f"{topic}#{n}", msg, info
    finally:
        reader.close()
