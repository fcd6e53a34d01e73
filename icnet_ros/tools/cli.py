"""Command-line pieces that ``train`` and ``evaluate`` share: sizes and data options."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h < 8 or w < 8:
            raise ValueError
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must be HxW with both at least 8, e.g. 360x480") from None


DATA_FORMS = "kitti:PATH | camvid:PATH:SPLIT | folder:IMAGES:MASKS | bag:PATH"


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``train`` and ``evaluate``: class file, bag topics, damaged samples."""
    p.add_argument("--classes", help="YAML class file: the model's classes (train), or the classes of folder:/bag: "
                                     "data (names, colors, drivable_ids, ignore_index)")
    p.add_argument("--image-topic", help="bag: image topic (sensor_msgs Image or CompressedImage)")
    p.add_argument("--mask-topic", help="bag: mask topic (mono8 class ids or rgb8 KITTI colours)")
    p.add_argument("--max-dt", type=float, default=0.05, help="bag: max image/mask header stamp gap in seconds")
    p.add_argument("--max-bad", type=float, default=0.01, metavar="FRACTION",
                   help="skip damaged samples (undecodable, mask of the wrong size) up to this share of all; "
                        "more stops the run (checked from the files' headers before it starts)")
    p.add_argument("--strict", action="store_true", help="stop at the first damaged sample")
