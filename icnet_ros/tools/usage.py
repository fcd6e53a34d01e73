"""
`--help` of the ROS executables `segment` and `play`, without ROS.

They take ROS arguments (``--ros-args -p name:=value -r from:=to``), which argparse does
not know, so their usage is written here from their parameter tables: the node's
(node_config.PARAMS) and the player's (data/play_source.PLAY_PARAMS).  tools/scripts.py
prints it for ``-h`` / ``--help`` before anything starts (no rclpy.init, no node), and
also without a ROS install.
"""

from __future__ import annotations

import shutil
import textwrap

DOCS = "the icnet_ros sources' docs/"


def _default(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _rows(rows, width: int) -> str:
    """'  name = default (note)' then the description, indented, wrapped to width."""
    out = []
    for name, default, note, text in rows:
        out.append(f"  {name} = {_default(default)}" + (f"  ({note})" if note else ""))
        out += textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(out)


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 100) - 2)


def segment_usage() -> str:
    from ..node_config import CHOICES, PARAMS

    rows = []
    for p in PARAMS:
        note = ", ".join(filter(None, [
            "live" if not p.read_only else "",
            f"{p.bounds[0]} .. {p.bounds[1]}" if p.bounds else "",
            " / ".join(CHOICES[p.name]) if p.name in CHOICES else ""]))
        rows.append((p.name, p.default, note, p.description))
    return f"""\
usage: segment [-h] [--ros-args [-p NAME:=VALUE ...] [-r FROM:=TO ...] [--params-file FILE]]

The road segmentation node `icnet`: camera images in, a class mask, a drivable mask and
its confidence, an overlay, a bird's-eye drivable grid, obstacle points and /diagnostics
out.  A lifecycle node: with autostart (the default) it configures and activates itself.

Topics in: image (sensor_msgs/Image; image/compressed with input_transport:=compressed)
and camera_info (sensor_msgs/CameraInfo).  Out: ~/mask, ~/drivable_mask,
~/drivable_confidence, ~/overlay, ~/drivable_area, ~/obstacles, ~/free_space,
/diagnostics.

ROS arguments go after --ros-args (parameters -p, topic remaps -r):
  segment --ros-args -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
  segment --ros-args -p device:=cpu -p camera_height:=1.2 -p camera_pitch:=0.05
  segment --ros-args --params-file config/icnet.yaml
In a ROS 2 install: ros2 run icnet_ros segment --ros-args ..., or
ros2 launch icnet_ros segment.launch.py image_topic:=/camera/image_raw.
A live parameter changes while it runs: `param set /icnet camera_pitch 0.05`
(or `ros2 param set /icnet camera_pitch 0.05`).

Parameters (live: changes while running; read-only ones take effect at configure):
{_rows(rows, _width())}

Docs: {DOCS}node.md (topics, parameters, lifecycle, QoS, diagnostics) and
{DOCS}venv.md (the ros2 commands' equivalents in a pip venv).
"""


def play_usage() -> str:
    from ..data.play_source import PLAY_PARAMS

    rows = [(name, default, f"{b[0]} .. {b[1]}" if b else "", text) for name, default, text, b in PLAY_PARAMS]
    return f"""\
usage: play [-h] --ros-args -p source:=FOLDER_OR_BAG [-p NAME:=VALUE ...] [-r FROM:=TO ...]

A camera from a folder of images (a KITTI data_road folder with its calibration) or a bag
(ROS 1 .bag, ROS 2 sqlite3 or MCAP): publishes image (or image/compressed) and
camera_info, stamped at publish time, then exits (or loops).

  play --ros-args -p source:=test/data/kitti_road -p rate:=2.0
  play --ros-args -p source:=drive_bag/ -p loop:=true -r image:=/camera/image_raw

Parameters:
{_rows(rows, _width())}

Docs: {DOCS}node.md, section "The replay player, `play`".
"""


USAGE = {"segment": segment_usage, "play": play_usage}


def usage(command: str) -> str:
    return USAGE[command]()
