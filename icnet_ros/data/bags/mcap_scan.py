"""
An MCAP file read record by record, for a recording cut off without its summary.

MCAP (https://mcap.dev/spec) is a magic, then records (opcode u8, length u64, body) and
at the end a summary and footer that rosbags needs.  This scanner needs neither: it reads
Schema, Channel and Message records, and Chunk records (uncompressed, lz4 or zstd, as
rosbag2 and rosbags write them) including a last chunk cut off part way, whose records are
read as far as they are whole.  It stops at DataEnd (the summary follows), at the end of
the file, or at the first record that is cut off or does not parse; ``Scan.cut`` then
says where.  Other record kinds (attachments, metadata, indexes) are skipped.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
import struct

MAGIC = b"\x89MCAP0\r\n"
SCHEMA, CHANNEL, MESSAGE, CHUNK, FOOTER, DATA_END = 0x03, 0x04, 0x05, 0x06, 0x02, 0x0F
NAMES = {SCHEMA: "schema", CHANNEL: "channel", MESSAGE: "message", CHUNK: "chunk"}
_U64 = struct.Struct("<Q")
_CHUNK_HEAD = struct.Struct("<QQQI")      # start, end, uncompressed size, crc


class _Short(Exception):
    """A record body shorter than its fields."""


def _string(body: bytes, at: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("<I", body, at)
    if at + 4 + n > len(body):
        raise _Short
    return body[at + 4:at + 4 + n], at + 4 + n


def zstd_decompress(data: bytes) -> bytes:
    """
    Return as much of a zstd frame as decompresses (a cut-off frame gives its first part).

    With the zstd module rosbags brings: the standard library's from Python 3.14,
    backports.zstd from rosbags 0.11.7, zstandard before.
    """
    for name in ("compression.zstd", "backports.zstd"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.ZstdDecompressor().decompress(data)
    zstandard = importlib.import_module("zstandard")
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def _decompress(compression: str, data: bytes) -> bytes:
    """As much of a chunk's records as decompresses: a cut-off chunk gives its first part."""
    if compression == "":
        return data
    if compression == "zstd":
        return zstd_decompress(data)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.LZ4FrameDecompressor().decompress(data)
    raise ValueError(f"chunk compression {compression!r} is not supported (lz4 and zstd are)")


def _connection(body: bytes, schemas: dict):
    from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition
    from rosbags.interfaces import MessageDefinitionFormat as Fmt

    cid, schema_id = struct.unpack_from("<HH", body)
    topic, at = _string(body, 4)
    encoding, _ = _string(body, at)
    name, fmt, text = schemas.get(schema_id, ("", "", ""))
    fmt = {"ros2msg": Fmt.MSG, "ros2idl": Fmt.IDL, "omgidl": Fmt.IDL}.get(fmt, Fmt.NONE)
    return cid, Connection(cid, topic.decode(), name, MessageDefinition(fmt, text if fmt != Fmt.NONE else ""), "",
                           0, ConnectionExtRosbag2(encoding.decode(), []), None)


def _record(op: int, body: bytes, schemas: dict):
    """Return the scan's item for a whole Schema, Channel or Message record (None for others)."""
    if op == SCHEMA:
        (sid,) = struct.unpack_from("<H", body)
        name, at = _string(body, 2)
        fmt, at = _string(body, at)
        text, _ = _string(body, at)
        schemas[sid] = (name.decode(), fmt.decode(), text.decode())
        return None
    if op == CHANNEL:
        return ("conn", *_connection(body, schemas))
    if op == MESSAGE:
        if len(body) < 22:
            raise _Short
        cid, _, log_time, _ = struct.unpack_from("<HIQQ", body)
        return "msg", cid, log_time, body[22:]
    return None


def _chunk_records(records: bytes, schemas: dict, state, where: str, whole: bool):
    """Yield the items of a chunk's records, as far as they are whole."""
    at = 0
    while at < len(records):
        if at + 9 > len(records):
            break
        op, (n,) = records[at], _U64.unpack_from(records, at + 1)
        if at + 9 + n > len(records):
            break
        try:
            item = _record(op, records[at + 9:at + 9 + n], schemas)
        except (_Short, struct.error, UnicodeDecodeError):
            state.cut = f"a damaged record inside the chunk at byte {where}"
            return
        if item is not None:
            yield item
        at += 9 + n
    if at < len(records) or not whole:
        state.cut = f"cut off inside the chunk at byte {where}"


def _chunk(body: bytes, schemas: dict, state, pos: int, whole: bool):
    try:
        _, _, size, _ = _CHUNK_HEAD.unpack_from(body)
        compression, at = _string(body, _CHUNK_HEAD.size)
        (n,) = _U64.unpack_from(body, at)
    except (_Short, struct.error):
        state.cut = f"cut off inside the chunk at byte {pos}"
        return
    data = body[at + 8:at + 8 + n]
    try:
        records = _decompress(compression.decode(), data)
    except ValueError as e:
        state.cut = f"{e} (the chunk at byte {pos})"
        return
    except Exception:  # zstd/lz4 errors: the compressed data itself is damaged
        state.cut = f"a chunk that does not decompress at byte {pos}"
        return
    yield from _chunk_records(records[:size], schemas, state, str(pos), whole and len(records) >= size)


def scan(path: Path, state):
    """Yield ('conn', id, Connection) and ('msg', id, log time, raw) in file order (recover.py)."""
    schemas: dict = {}
    with path.open("rb") as f:
        end = os.fstat(f.fileno()).st_size
        if f.read(8) != MAGIC:
            state.cut = "it does not start as an MCAP file"
            return
        while True:
            pos = f.tell()
            head = f.read(9)
            if len(head) < 9:
                state.cut = f"the file ends at byte {pos} without its summary" if not head else \
                    f"cut off at byte {pos}"
                return
            op, (n,) = head[0], _U64.unpack_from(head, 1)
            if op in (DATA_END, FOOTER):
                return
            if op not in NAMES:
                if pos + 9 + n > end or op == 0:
                    state.cut = f"cut off at byte {pos}" if op else f"an unreadable record at byte {pos}"
                    return
                f.seek(n, os.SEEK_CUR)
                continue
            body = f.read(min(n, end - pos - 9))   # a length past the end: the record is cut off
            if op == CHUNK:
                yield from _chunk(body, schemas, state, pos, len(body) == n)
                if state.cut:
                    return
                continue
            if len(body) < n:
                state.cut = f"cut off inside a {NAMES[op]} record at byte {pos}"
                return
            try:
                item = _record(op, body, schemas)
            except (_Short, struct.error, UnicodeDecodeError):
                state.cut = f"a damaged {NAMES[op]} record at byte {pos}"
                return
            if item is not None:
                yield item
