"""
Damaged bags read record by record, up to the last whole message.

A recording cut off by a crash or a power loss has no index: a ROS 1 ``.bag`` without
its index records (``index_pos`` 0), an MCAP file without its summary and footer (the last
chunk perhaps half written), a ROS 2 bag folder without ``metadata.yaml``, a sqlite3
``.db3`` whose last pages are missing.  rosbags refuses these whole; ``open_damaged``
reads what is on disk instead, never writing to the bag:

* a ROS 2 folder without ``metadata.yaml`` whose storage files are whole: rosbags reads
  the storage files themselves;
* otherwise each file is scanned from its start by the format's own scanner
  (``ros1_scan.py``, ``mcap_scan.py``, ``sqlite_scan.py``), which stops at the first record
  that is cut off or does not parse.

The result has rosbags' AnyReader interface as ``dataset.py`` and the player use it
(``connections``, ``message_count``, ``messages(connections=...)``, ``deserialize``,
``close``) and a one-line ``summary`` of what was recovered.  Messages come in file order
(the order they were recorded in).  A bag with no whole message is a DataError.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..image_io import DataError

STORAGE_SUFFIXES = (".mcap", ".db3")


class Scan:
    """What one scanner pass found: set ``cut`` to say where the file stops being readable."""

    def __init__(self):
        self.cut = ""          # '' while the file reads to a clean end


def storage_files(path: Path) -> list[Path]:
    """Return a ROS 2 bag's storage files in recording order (name_0, name_1 ... name_10)."""
    if path.is_file():
        return [path]
    files = [p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file()]

    def order(p: Path):
        tail = p.stem.rpartition("_")[2]
        return (p.stem[:len(p.stem) - len(tail)], int(tail) if tail.isdigit() else -1, p.name)
    return sorted(files, key=order)


def looks_damaged(path: Path) -> str:
    """
    Return what is wrong with a ROS 2 bag that rosbags opened without complaint ('' when nothing is).

    A .db3 shorter than its header says (SQLite opens it and reads the missing bytes as
    zeros), or storage files that metadata.yaml does not list (a recorder that rewrites it
    at each split, killed while it filled the next file: rosbags would leave that file out).
    """
    from .sqlite_scan import cut_short

    if path.suffix == ".bag" or not path.exists():
        return ""
    files = storage_files(path)
    cut = next((why for f in files if f.suffix == ".db3" and (why := cut_short(f))), "")
    if cut or not path.is_dir() or not (path / "metadata.yaml").is_file():
        return cut
    import yaml

    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        listed = {Path(p).name for p in info["relative_file_paths"]}
    except Exception:  # rosbags read it; a form this check does not know is left to rosbags
        return ""
    unlisted = [f.name for f in files if f.name not in listed]
    return f"metadata.yaml does not list {', '.join(unlisted)}" if unlisted else ""


def clock(ns: int) -> str:
    """Return a log time as the wall clock it was recorded at, e.g. '2026-12-03 12:03:41.2 UTC'."""
    t = datetime.fromtimestamp(ns / 1e9, timezone.utc)
    return f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 100000} UTC"


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _unpacked(raw: bytes) -> bytes:
    """Return a ROS 2 message as CDR, undoing rosbag2's per-message compression (compression_mode: message)."""
    if not raw.startswith(ZSTD_MAGIC):   # CDR starts with its encapsulation header, 00 01 00 00 or so
        return raw
    from .mcap_scan import zstd_decompress

    return zstd_decompress(raw)


def _count(n: int) -> str:
    return f"{n:,} message{'s' if n != 1 else ''}"


class RecoveredBag:
    """
    A damaged bag read by scanning: AnyReader's reading interface.

    ``scanners`` is a list of (file, scan function); each scan function yields
    ('conn', local id, Connection) and ('msg', local id, log time ns, raw bytes) in file
    order and sets its Scan's ``cut``.  Connections of the same topic and type in several
    files are one.
    """

    def __init__(self, path: Path, scanners: list, is2: bool, default_types=None):
        from rosbags.typesys import get_typestore, Stores

        self.path, self.scanners, self.is2 = path, scanners, is2
        self.connections: list = []
        self._by_key: dict = {}
        self.message_count, self.last_time, self.cut = 0, None, ""
        for _ in self._records():   # one pass: topics, the message count, where it stops
            pass
        self.typestore = get_typestore(Stores.EMPTY)
        self._register_types(default_types)

    def _records(self, wanted: set | None = None):
        """Yield (Connection, log time, raw) of the wanted connections (all: None), file by file."""
        count, last, cuts = 0, None, []
        for file, scan in self.scanners:
            state, local = Scan(), {}
            for record in scan(file, state):
                if record[0] == "conn":
                    local[record[1]] = self._connection(record[2])
                    continue
                conn = local.get(record[1])
                if conn is None:   # a message before (or without) its connection record
                    continue
                count, last = count + 1, record[2]
                if wanted is None or conn.id in wanted:
                    yield conn, record[2], _unpacked(record[3]) if self.is2 else record[3]
            if state.cut:
                cuts.append(f"{file.name} {state.cut}" if len(self.scanners) > 1 else state.cut)
        if wanted is None:
            self.message_count, self.last_time, self.cut = count, last, "; ".join(cuts)

    def _connection(self, conn):
        key = (conn.topic, conn.msgtype)
        if key not in self._by_key:
            self._by_key[key] = conn._replace(id=len(self.connections) + 1, owner=self)
            self.connections.append(self._by_key[key])
        elif not self._by_key[key].msgdef.data and conn.msgdef.data:
            better = self._by_key[key]._replace(msgdef=conn.msgdef)
            self.connections[better.id - 1] = self._by_key[key] = better
        return self._by_key[key]

    def _register_types(self, default_types) -> None:
        from rosbags.interfaces import MessageDefinitionFormat as Fmt
        from rosbags.typesys import get_types_from_idl, get_types_from_msg

        types: dict = {}
        for conn in self.connections:
            fmt, text = conn.msgdef.format, conn.msgdef.data
            if fmt == Fmt.MSG and text:
                types.update(get_types_from_msg(text, conn.msgtype))
            elif fmt == Fmt.IDL and text:
                sep = "=" * 80 + "\n"   # several IDL files, each after a '=== / IDL: name' line
                parts = [p.split("\n", 1)[1] for p in text.split(sep)[1:]] if text.startswith(sep) else [text]
                for part in parts:
                    types.update(get_types_from_idl(part))
        if default_types is not None and {c.msgtype for c in self.connections} - set(types):
            types = {**default_types.fielddefs, **types}   # a bag without definitions: ROS 2's own
        self.typestore.register(types)

    def messages(self, connections=()):
        """Yield (Connection, log time ns, raw bytes) in file order."""
        wanted = {c.id for c in connections} if connections else {c.id for c in self.connections}
        yield from self._records(wanted)

    def deserialize(self, raw: bytes, msgtype: str):
        try:
            if self.is2:
                return self.typestore.deserialize_cdr(raw, msgtype)
            return self.typestore.deserialize_ros1(raw, msgtype)
        except Exception as e:  # a type the bag does not define, a message cut short, ...
            raise DataError(f"bag {self.path}: a {msgtype} message cannot be read ({type(e).__name__}: {e})") from None

    def close(self) -> None:
        pass

    def summary(self, why: str) -> str:
        """Return the one warning line: what was read, up to when, and why the rest is not."""
        upto = f" up to {clock(self.last_time)}" if self.last_time is not None else ""
        if self.cut:
            return (f"bag {self.path}: {why}; read {_count(self.message_count)}{upto}, the rest is unreadable "
                    f"({self.cut})")
        return f"bag {self.path}: {why}; read all {_count(self.message_count)}{upto} record by record"


def _scanners(path: Path):
    """(scanners, is2, what is missing) for a bag path rosbags refused."""
    from . import mcap_scan, ros1_scan, sqlite_scan

    if path.suffix == ".bag":
        return [(path, ros1_scan.scan)], False, "its index is missing or damaged"
    files = storage_files(path)
    if not files:
        raise DataError(f"bag {path} has neither metadata.yaml nor a .mcap or .db3 storage file")
    scan = {".mcap": mcap_scan.scan, ".db3": sqlite_scan.scan}
    why = "its index is missing or damaged"
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        why = "metadata.yaml is missing"
    return [(f, scan[f.suffix]) for f in files], True, why


def _whole_storage(path: Path, default_types):
    """Return rosbags' reader on a metadata-less folder's MCAP files when they are whole, else None."""
    from rosbags.highlevel import AnyReader

    files = storage_files(path) if path.is_dir() and not (path / "metadata.yaml").is_file() else []
    if not files or any(f.suffix != ".mcap" for f in files):
        return None   # SQLite opens a cut-off .db3 and fails part way: always scanned
    reader = AnyReader(files, default_typestore=default_types)
    try:
        reader.open()
    except Exception:  # a damaged storage file: scan it instead
        return None
    return _Unpacking(reader)


class _Unpacking:
    """Rosbags' reader with rosbag2's per-message compression undone (metadata.yaml would have said)."""

    def __init__(self, reader):
        self._reader = reader

    def __getattr__(self, name):
        return getattr(self._reader, name)

    def messages(self, connections=()):
        for conn, t, raw in self._reader.messages(connections=connections):
            yield conn, t, _unpacked(raw)


def open_damaged(path: Path, error: Exception, default_types=None, warn=None, why: str = ""):
    """
    Return a reader of what is readable in a bag rosbags refused with ``error``.

    ``warn`` gets one line saying what was recovered (``why`` the bag was scanned, when
    its files are whole).  DataError when no whole message can be read (e.g. a file cut
    inside its header).
    """
    scanners, is2, missing = _scanners(path)
    why = why or missing
    reader = _whole_storage(path, default_types) if is2 else None
    if reader is not None and reader.message_count:
        if warn is not None:
            warn(f"bag {path}: metadata.yaml is missing; read its storage "
                 f"file{'s' if len(reader.paths) > 1 else ''} directly ({_count(reader.message_count)})")
        return reader
    if reader is not None:
        reader.close()
    try:
        bag = RecoveredBag(path, scanners, is2, default_types)
    except DataError:
        raise
    except Exception as e:  # a type definition in the bag that rosbags cannot parse, ...
        raise DataError(f"bag {path} cannot be read as a ROS 1 or ROS 2 bag ({error}); reading it record by "
                        f"record failed too ({e})") from None
    if not bag.message_count:
        raise DataError(f"bag {path} cannot be read as a ROS 1 or ROS 2 bag: no whole message before the damage "
                        f"({bag.cut or 'no message record'}; rosbags: {error})")
    if warn is not None:
        warn(bag.summary("recording cut off" if bag.cut else why))
    return bag
