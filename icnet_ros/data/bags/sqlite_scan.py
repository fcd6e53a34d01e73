"""
A rosbag2 sqlite3 ``.db3`` read without its metadata.yaml, as far as its pages are there.

The file is opened read-only and immutable (nothing is written to it or next to it, not
even a journal), through a file layer that shows SQLite only its whole pages.  Topics
come from the ``topics`` table (and type definitions from ``message_definitions`` where
the bag has them); messages from the ``messages`` table in
the order they were recorded (its row ids), up to the first row SQLite cannot read: a
file cut off by a crash loses its last pages, and with them the rows they held.

Not recovered: rows the table's b-tree no longer reaches when a page of the tree itself
lies in the lost part (possible in long recordings; ``sqlite3 bag.db3 .recover`` salvages
them into a new database).
"""

from __future__ import annotations

import itertools
from pathlib import Path

_names = itertools.count()


def _whole_pages(path: Path) -> int:
    """Return the size of the file's whole pages: a page cut part way reads as lost, not as zeros."""
    with path.open("rb") as f:
        head = f.read(100)
        size = f.seek(0, 2)
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return 0
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    return size // page * page if page >= 512 else 0


def cut_short(path: Path) -> str:
    """
    Return why a .db3 is shorter than its header says ('' when it is not).

    SQLite opens such a file and fails (or reads zeros) only at the pages that are
    missing, so a bag that rosbags opened is checked with this before it is trusted.
    """
    with path.open("rb") as f:
        head = f.read(100)
        size = f.seek(0, 2)
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return ""
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid = pages and head[24:28] == head[92:96]    # the header's page count is kept up to date
    if size % page or (valid and size < pages * page):
        return f"{path.name} is {size:,} bytes, shorter than the {max(pages * page, size):,} its pages need"
    return ""


def _open(path: Path, size: int):
    """
    Return a read-only apsw connection that sees only the first ``size`` bytes of the file.

    (apsw comes with rosbags.)  SQLite refuses a file shorter than its header says as
    malformed unless told to take the pages there are (writable_schema, a setting of this
    read-only connection only).
    """
    import apsw

    class File(apsw.VFSFile):
        def __init__(self, *_):   # noqa: D107 (apsw calls it; the base is not needed)
            self.f = path.open("rb")

        def xRead(self, amount, offset):  # noqa: N802 (apsw's names)
            self.f.seek(offset)
            return self.f.read(max(0, min(amount, size - offset)))

        def xFileSize(self):  # noqa: N802
            return size

        def xClose(self):  # noqa: N802
            self.f.close()

        def xDeviceCharacteristics(self):  # noqa: N802
            return 0

        def xSectorSize(self):  # noqa: N802
            return 0

        def xFileControl(self, *_):  # noqa: N802
            return False

        def xLock(self, *_):  # noqa: N802
            pass

        def xUnlock(self, *_):  # noqa: N802
            pass

        def xCheckReservedLock(self):  # noqa: N802
            return False

    class Whole(apsw.VFS):
        def xOpen(self, *_):  # noqa: N802
            return File()

    name = f"icnet-cut-{next(_names)}"
    vfs = Whole(name, "")
    db = apsw.Connection(f"file:{path.name}?immutable=1", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI,
                         vfs=name)
    db.execute("PRAGMA writable_schema=ON")
    return db, vfs


def _definitions(db) -> dict:
    import apsw
    from rosbags.interfaces import MessageDefinition
    from rosbags.interfaces import MessageDefinitionFormat as Fmt

    try:
        rows = list(db.execute("SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"))
    except apsw.Error:   # bags before rosbag2 schema 4 have no such table
        return {}
    fmt = {"ros2msg": Fmt.MSG, "ros2idl": Fmt.IDL}
    return {name: MessageDefinition(fmt[enc], text) for name, enc, text in rows if enc in fmt and text}


def _connections(db):
    from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition
    from rosbags.interfaces import MessageDefinitionFormat as Fmt

    defs = _definitions(db)
    none = MessageDefinition(Fmt.NONE, "")
    for cid, topic, msgtype, fmt in db.execute("SELECT id, name, type, serialization_format FROM topics ORDER BY id"):
        if not (isinstance(topic, str) and isinstance(msgtype, str) and topic and msgtype):
            continue   # a page lost to the cut
        yield "conn", cid, Connection(cid, topic, msgtype, defs.get(msgtype, none), "", 0,
                                      ConnectionExtRosbag2(fmt, []), None)


def scan(path: Path, state):
    """Yield ('conn', id, Connection) and ('msg', id, log time, raw) in recording order (recover.py)."""
    import apsw

    size = _whole_pages(path)
    if not size:
        state.cut = "it does not start as an SQLite database"
        return
    db, vfs = _open(path, size)
    try:
        try:
            conns = list(_connections(db))
        except apsw.Error as e:
            state.cut = f"its topics table is unreadable (SQLite: {e})"
            return
        yield from conns
        rows = db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id")
        while True:
            try:
                row = next(rows, None)
            except apsw.Error as e:
                state.cut = f"its later pages are missing or damaged (SQLite: {e})"
                return
            if row is None:
                return
            yield "msg", row[0], row[1], bytes(row[2])
    except apsw.Error as e:
        state.cut = f"its messages table is unreadable (SQLite: {e})"
    finally:
        db.close()
        vfs.unregister()
