"""
A ROS 1 bag read record by record, for a recording cut off without its index.

A ROS 1 bag (format 2.0, http://wiki.ros.org/Bags/Format/2.0) is a version line, then
records: header length u32, header fields (length u32, ``name=value``), data length u32,
data.  rosbags needs the index the recorder writes when it closes the bag (``index_pos``
in the bag header); this scanner reads the chunks in order instead: their Connection and
Message data records, uncompressed, bz2 or lz4.  The last chunk may be cut off, or still
carry the placeholder length the recorder writes while it fills a chunk; it is read as
far as its records are whole.  Index and chunk-info records are skipped.  ``Scan.cut``
says where reading stopped early.
"""

from __future__ import annotations

import os
from pathlib import Path
import struct

VERSION = b"#ROSBAG V2.0\n"
MSGDATA, BAGHEADER, CHUNK, CONNECTION = 2, 3, 5, 7
_U32 = struct.Struct("<I")


class _Short(Exception):
    """A record cut off, or one that does not parse."""


def _header(buf: bytes) -> dict[str, bytes]:
    fields, at = {}, 0
    while at < len(buf):
        if at + 4 > len(buf):
            raise _Short
        (n,) = _U32.unpack_from(buf, at)
        name, eq, value = buf[at + 4:at + 4 + n].partition(b"=")
        if not eq or at + 4 + n > len(buf):
            raise _Short
        fields[name.decode("latin-1")] = value
        at += 4 + n
    return fields


def _split(buf: bytes, at: int):
    """(header fields, data, next offset) of the record at ``at``; _Short when it is not whole."""
    if at + 4 > len(buf):
        raise _Short
    (hn,) = _U32.unpack_from(buf, at)
    if at + 8 + hn > len(buf):
        raise _Short
    header = _header(buf[at + 4:at + 4 + hn])
    (dn,) = _U32.unpack_from(buf, at + 4 + hn)
    start = at + 8 + hn
    if start + dn > len(buf):
        raise _Short
    return header, buf[start:start + dn], start + dn


def _connection(header: dict, data: bytes):
    from rosbags.interfaces import Connection, ConnectionExtRosbag1, MessageDefinition
    from rosbags.interfaces import MessageDefinitionFormat as Fmt
    from rosbags.typesys.msg import normalize_msgtype

    cid = _U32.unpack(header["conn"])[0]
    fields = _header(data)
    topic = "/" + "/".join(x for x in header["topic"].decode().split("/") if x)
    latching = fields.get("latching", b"").decode()
    return cid, Connection(cid, topic, normalize_msgtype(fields["type"].decode()),
                           MessageDefinition(Fmt.MSG, fields.get("message_definition", b"").decode()),
                           fields.get("md5sum", b"").decode(), 0,
                           ConnectionExtRosbag1(fields["callerid"].decode() if "callerid" in fields else None,
                                                int(latching) if latching else None), None)


def _item(header: dict, data: bytes):
    op = header.get("op", b"\0")[0]
    if op == CONNECTION:
        return ("conn", *_connection(header, data))
    if op == MSGDATA:
        sec, nsec = struct.unpack("<II", header["time"])
        return "msg", _U32.unpack(header["conn"])[0], sec * 10**9 + nsec, data
    return None


def _decompress(compression: str, data: bytes) -> bytes:
    """As much of a chunk as decompresses: a cut-off chunk gives its first part."""
    if compression == "none":
        return data
    if compression == "bz2":
        import bz2

        return bz2.BZ2Decompressor().decompress(data)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.LZ4FrameDecompressor().decompress(data)
    raise ValueError(f"chunk compression {compression!r} is not supported (bz2 and lz4 are)")


def _chunk(header: dict, data: bytes, state, pos: int, whole: bool):
    """Yield the items of a chunk's records, as far as they are whole."""
    try:
        records = _decompress(header["compression"].decode(), data)
    except ValueError as e:
        state.cut = f"{e} (the chunk at byte {pos})"
        return
    except Exception:  # bz2/lz4 errors: the compressed data itself is damaged
        state.cut = f"a chunk that does not decompress at byte {pos}"
        return
    at = 0
    while at < len(records):
        try:
            h, d, nxt = _split(records, at)
            if "op" not in h:   # zeros where a crash left the file longer than its data
                break
            item = _item(h, d)
        except (_Short, KeyError, struct.error, UnicodeDecodeError, ValueError, IndexError):
            break
        if item is not None:
            yield item
        at = nxt
    if at < len(records) or not whole:
        state.cut = f"cut off inside the chunk at byte {pos}"


def _record(f, end: int):
    """(header, data, whole) of the next top-level record; a chunk's data may be cut off."""
    pos = f.tell()
    raw = f.read(4)
    if len(raw) < 4:
        raise _Short
    (hn,) = _U32.unpack(raw)
    if pos + 8 + hn > end:
        raise _Short
    header = _header(f.read(hn))
    (dn,) = _U32.unpack(f.read(4))
    left = end - f.tell()
    if header.get("op", b"\0")[0] == CHUNK and (dn == 0 or dn > left):
        # cut off, or still the placeholder length written while the recorder filled it
        return header, f.read(left), False
    if dn > left:
        raise _Short
    if header.get("op", b"\0")[0] in (CHUNK, CONNECTION, MSGDATA):
        return header, f.read(dn), True
    f.seek(dn, os.SEEK_CUR)
    return header, b"", True


def scan(path: Path, state):
    """Yield ('conn', id, Connection) and ('msg', id, log time, raw) in file order (recover.py)."""
    with path.open("rb") as f:
        end = os.fstat(f.fileno()).st_size
        if f.readline() != VERSION:
            state.cut = "it does not start as a ROS 1 bag (#ROSBAG V2.0)"
            return
        while f.tell() < end:
            pos = f.tell()
            try:
                header, data, whole = _record(f, end)
                if "op" not in header:   # zeros where a crash left the file longer than its data
                    state.cut = f"an unreadable record at byte {pos}"
                    return
                op = header["op"][0]
                if op == CHUNK:
                    yield from _chunk(header, data, state, pos, whole)
                    if state.cut:
                        return
                    continue
                item = _item(header, data)
            except (_Short, KeyError, struct.error, UnicodeDecodeError, ValueError, IndexError):
                state.cut = f"cut off at byte {pos}"
                return
            if item is not None:
                yield item
