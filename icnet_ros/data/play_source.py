"""
What ``play`` plays, without ROS: the frames of a folder of images or of a bag.

A folder in the KITTI data_road layout (image_2/ + calib/) is recognised; a bag gives one
camera's frames.  Frames come in the order ``play`` publishes them.  The replay player
(``ros/player.py``) turns them into messages; the demo names its output files by them.

Each frame is (name, kind, payload, calibration):

* kind 'file': payload is the image's path, calibration a KITTI calib dict or None;
* kind 'bag': payload is the bag's image message, calibration its latest CameraInfo or None.

Names are the file name, or 'TOPIC#N' for bag frames (``bag_reader.camera_frames``).
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from . import image_io
from .bags import reader as bag_reader
from .image_io import DataError, IMAGE_EXTS
from ..ground import geometry
from ..optional import MissingDependency


class PlayError(ValueError):
    """A source that cannot be played; the message names it."""


# play's parameters: (name, default, description, (lowest, highest) or None), all read-only.
# ros/player.py declares them; `play --help` lists them (tools/usage.py, without ROS).
PLAY_PARAMS = (
    ("source", "", "Folder of images, KITTI data_road folder or bag.", None),
    ("rate", 10.0, "Frames per second.", (0.01, 1000.0)),
    ("loop", False, "Start over at the end.", None),
    ("count", 0, "Frames to publish in all; 0: one pass (forever with loop).", (0, 10**9)),
    ("frame_id", "", "Header frame_id; empty: 'camera' (folders) or the bag's.", None),
    ("image_topic", "", "Bag topic to play; empty: the first image topic.", None),
    ("calib_file", "", "KITTI calib file for camera_info (folders).", None),
    ("transport", "raw", "raw (image) or compressed (image/compressed).", None),
    ("encoding", "", "Raw image encoding to publish, as a camera driver would (bgr8, rgb16, bayer_rggb8, yuv422, "
                     "nv21 ...); empty: bgr8 for image files, as recorded for bags.", None),
    ("qos_reliability", "reliable", "reliable or best_effort.", None),
    ("wait_for_subscribers", 0, "Start once the image topic has this many subscribers.", (0, 1000)),
)


def folder_frames(folder: Path, calib_file: str = ""):
    """Sorted images of a folder; KITTI data_road (image_2/, calib/) recognised."""
    if (folder / "image_2").is_dir():
        folder = folder / "image_2"
    files = image_io.list_images(folder)
    if not files:
        raise PlayError(f"parameter 'source': folder {folder} holds no images ({', '.join(IMAGE_EXTS)})")
    calib_dir = folder.parent / "calib"
    fallback = geometry.read_kitti_calib(calib_file) if calib_file else None
    if fallback is None and calib_dir.is_dir():
        # KITTI road calibs are near-identical: frames without their own file use any one
        any_calib = sorted(calib_dir.glob("*.txt"))
        fallback = geometry.read_kitti_calib(any_calib[0]) if any_calib else None
    for path in files:
        own = calib_dir / (path.stem + ".txt")
        calib = geometry.read_kitti_calib(own) if own.is_file() and not calib_file else fallback
        yield path.name, "file", path, calib


_warned: set[str] = set()


def _once(warn):
    """``warn`` each line once per process: a looping play reopens a damaged bag every pass."""
    def say(line: str) -> None:
        if line not in _warned:
            _warned.add(line)
            warn(line)
    return say


def bag_frames(path: Path, image_topic: str = "", warn=bag_reader.warn_stderr):
    """
    Return the bag's camera (bag_reader.camera_frames): one image topic and the camera_info next to it.

    A damaged bag plays up to its last whole message; ``warn`` says so once.
    """
    frames = bag_reader.camera_frames(path, image_topic, needed_for=f"playing the bag {path}", warn=_once(warn))
    try:
        for name, msg, info in frames:
            yield name, "bag", msg, info
    except MissingDependency as e:
        raise PlayError(f"parameter 'source': {e}") from None
    except DataError as e:
        raise PlayError(str(e)) from None
    finally:
        frames.close()  # closes the bag reader now when play stops early


def source_frames(source: Path, image_topic: str = "", calib_file: str = "", warn=bag_reader.warn_stderr):
    """Return the frames of ``source``: a bag (.bag, .mcap, .db3 or a ROS 2 bag folder) or a folder."""
    if bag_reader.is_bag(source):
        return bag_frames(source, image_topic, warn)
    if source.is_dir():
        return folder_frames(source, calib_file)
    raise PlayError(f"parameter 'source': {source} is neither a folder nor a bag (.bag, .mcap, .db3)")


def frame_names(source: Path, image_topic: str = "", count: int | None = None) -> list[str]:
    """Return the names of the first ``count`` (default: all) frames ``play`` publishes from ``source``."""
    frames = source_frames(source, image_topic)
    try:
        return [name for name, *_ in islice(frames, count)]
    finally:
        frames.close()
