"""
``ros2 run icnet_ros repair``: a repaired copy of a cut-off bag, next to it, for any ROS tool.

    repair run.bag                  # writes run.repaired.bag
    repair rosbag2_2026_12_03/      # writes rosbag2_2026_12_03_repaired/ (same storage, with metadata.yaml)

Reads the bag as ``train`` and ``play`` do (data/bags/recover.py: up to the last whole
message) and writes every message read, byte for byte, into a new bag with an index
(ROS 1) or metadata.yaml and summary (ROS 2).  The damaged bag is never written to; a bag
that is whole is left as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from ..data.bags import reader as bag_reader
from ..data.image_io import DataError
from ..optional import MissingDependency


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="repair", description=__doc__.strip().split("\n\n")[0],
                                epilog="Docs: the icnet_ros sources' docs/recordings.md.")
    p.add_argument("bag", help="a ROS 1 .bag, a ROS 2 bag folder, or its .mcap / .db3 file")
    p.add_argument("--out", help="where to write the copy (default: next to the bag, "
                                 "NAME.repaired.bag or NAME_repaired/)")
    return p


def default_out(bag: Path) -> Path:
    """Return where the copy goes: next to the bag, never over it."""
    if bag.suffix == ".bag":
        return bag.with_name(f"{bag.stem}.repaired.bag")
    return bag.with_name(f"{bag.stem if bag.is_file() else bag.name}_repaired")


def _writer(out: Path, ros1: bool, storage: str):
    if ros1:
        from rosbags.rosbag1 import Writer

        return Writer(out)
    from rosbags.rosbag2 import StoragePlugin, Writer

    return Writer(out, version=9, storage_plugin=StoragePlugin.SQLITE3 if storage == ".db3" else StoragePlugin.MCAP)


def repair(bag: Path, out: Path, warn=bag_reader.warn_stderr) -> int:
    """Write the readable messages of a damaged ``bag`` into a new bag at ``out``; return how many."""
    said = []
    reader = bag_reader.open_bag(bag, "repair", warn=lambda line: (said.append(line), warn(line)))
    try:
        if not said:
            return 0
        if out.exists():
            raise DataError(f"--out {out} exists already; remove it or give another --out")
        ros1 = not getattr(reader, "is2", True)
        storage = next((p.suffix for p in bag_reader.recover.storage_files(bag)), ".mcap") if not ros1 else ""
        count, conns = 0, {}
        with _writer(out, ros1, storage) as w:
            for conn in reader.connections:
                if ros1 and conn.msgdef.data and conn.digest:
                    conns[conn.id] = w.add_connection(conn.topic, conn.msgtype, msgdef=conn.msgdef.data,
                                                      md5sum=conn.digest)
                else:
                    conns[conn.id] = w.add_connection(conn.topic, conn.msgtype, typestore=reader.typestore)
            for conn, t, raw in reader.messages():
                w.write(conns[conn.id], t, raw)
                count += 1
        return count
    finally:
        reader.close()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    bag = Path(args.bag)
    out = Path(args.out) if args.out else default_out(bag_reader.bag_root(bag))
    try:
        count = repair(bag, out)
    except (DataError, MissingDependency) as e:
        print(f"repair: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # rosbags' writer on a type it cannot write, a full disk, ...
        print(f"repair: error: cannot write {out} ({e})", file=sys.stderr)
        return 2
    if not count:
        print(f"repair: bag {bag} is whole; nothing to repair")
        return 0
    print(f"repair: wrote {count:,} messages to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
