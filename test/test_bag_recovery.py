"""
Cut-off bags: written whole with rosbags, then cut as a crash or a power loss leaves them.

For ROS 1, ROS 2 MCAP and ROS 2 sqlite3: cut inside the header (one clear error), inside
the first and the second chunk, after the last chunk, and without metadata.yaml.  The
messages that come back are the intact bag's, in its order, byte for byte, up to the cut;
one warning line says what was read.  Nothing is written into the bag.
"""

from __future__ import annotations

from pathlib import Path
import shutil

import numpy as np
import pytest

from icnet_ros.data.bags import reader as bag_reader
from icnet_ros.data.datasets import DataError, open_dataset

rosbag1 = pytest.importorskip("rosbags.rosbag1")
rosbag2 = pytest.importorskip("rosbags.rosbag2")
typesys = pytest.importorskip("rosbags.typesys")
IMAGE = "sensor_msgs/msg/Image"
H, W, N = 24, 32, 6
FILLER = 600_000    # two of these after frame 2 close rosbags' first 1 MiB chunk


def _pixels(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _mask(i: int) -> np.ndarray:
    return (np.arange(H * W).reshape(H, W) // W + i > H // 2).astype(np.uint8)


def _image(ts, t: float, array: np.ndarray, encoding: str, ros1: bool):
    T = ts.types
    stamp = T["builtin_interfaces/msg/Time"](sec=int(t), nanosec=int(round((t % 1) * 1e9)))
    header = T["std_msgs/msg/Header"](stamp=stamp, frame_id="cam", **({"seq": 0} if ros1 else {}))
    ch = 1 if array.ndim == 2 else 3
    return T[IMAGE](header=header, height=H, width=W, encoding=encoding, is_bigendian=0, step=W * ch,
                    data=array.reshape(-1))


def write(folder: Path, kind: str, compression: str = "") -> tuple[Path, Path]:
    """Return (the bag to open, its storage file): N image/mask pairs, two chunks in ROS 1 and MCAP."""
    ros1 = kind == "ros1"
    ts = typesys.get_typestore(typesys.Stores.ROS1_NOETIC if ros1 else typesys.Stores.ROS2_KILTED)
    serialize = ts.serialize_ros1 if ros1 else ts.serialize_cdr
    if ros1:
        bag = folder / "cut.bag"
        writer = rosbag1.Writer(bag)
        if compression:
            writer.set_compression(getattr(rosbag1.Writer.CompressionFormat, compression.upper()))
    else:
        bag = folder / f"cut_{kind}"
        writer = rosbag2.Writer(bag, version=9, storage_plugin=getattr(rosbag2.StoragePlugin, kind.upper()))
        if compression:   # zstd: MCAP chunks; message: each message (rosbag2's compression_mode: message)
            mode = rosbag2.CompressionMode.MESSAGE if compression == "message" else rosbag2.CompressionMode.STORAGE
            writer.set_compression(mode, rosbag2.CompressionFormat.ZSTD)
    with writer as w:
        image = w.add_connection("/camera/image", IMAGE, typestore=ts)
        mask = w.add_connection("/camera/mask", IMAGE, typestore=ts)
        filler = w.add_connection("/filler", "std_msgs/msg/String", typestore=ts)
        for i in range(N):
            t = 10.0 + i * 0.1
            w.write(image, int(t * 1e9), serialize(_image(ts, t, _pixels(i), "rgb8", ros1), IMAGE))
            w.write(mask, int(t * 1e9) + 1000, serialize(_image(ts, t, _mask(i), "mono8", ros1), IMAGE))
            if i == 2:
                for k in range(2):
                    text = ts.types["std_msgs/msg/String"](data=str(k) * FILLER)
                    w.write(filler, int(t * 1e9) + 2000 + k, serialize(text, "std_msgs/msg/String"))
    return bag, bag if ros1 else next(bag.glob("*.mcap" if kind == "mcap" else "*.db3"))


def read_all(bag: Path, warnings: list | None = None) -> list:
    reader = bag_reader.open_bag(bag, "the test", warn=(warnings if warnings is not None else []).append)
    try:
        return [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    finally:
        reader.close()


def cut_copy(bag: Path, storage: Path, size: int, folder: Path, metadata: bool = False) -> Path:
    """Return a copy of the bag whose storage file is cut to ``size`` bytes (ROS 2: without metadata.yaml)."""
    folder.mkdir()
    if bag == storage:
        out = folder / bag.name
    else:
        out = folder / bag.name
        out.mkdir()
        if metadata:
            shutil.copy(bag / "metadata.yaml", out / "metadata.yaml")
        out_storage = out / storage.name
    data = storage.read_bytes()[:size]
    (out if bag == storage else out_storage).write_bytes(data)
    return out


def chunk_ends(kind: str, storage: Path) -> list[int]:
    """Return where each chunk ends, from the intact file's own index."""
    if kind == "ros1":
        reader = rosbag1.Reader(storage)
        reader.open()
        ends = [c.datapos + c.datasize for _, c in sorted(reader.chunks.items())]
        reader.close()
        return ends
    from rosbags.rosbag2.storage_mcap import McapReader

    reader = McapReader(storage)
    reader.open()
    ends = [c.chunk_start_offset + c.chunk_length for c in reader.chunks]
    reader.close()
    return ends


def payload_cut(storage: Path, i: int) -> int:
    """Return a byte offset in the middle of frame i's pixels (stored uncompressed)."""
    at = storage.read_bytes().find(_pixels(i).tobytes())
    assert at > 0
    return at + H * W * 3 // 2


def first_message_of_frame(ref: list, i: int) -> int:
    stamp = int((10.0 + i * 0.1) * 1e9)
    return next(k for k, (topic, t, _) in enumerate(ref) if topic == "/camera/image" and t == stamp)


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_chunked_bags_cut_anywhere_give_every_whole_message(tmp_path, kind):
    bag, storage = write(tmp_path, kind)
    ref = read_all(bag)
    assert len(ref) == 2 * N + 2 and len(chunk_ends(kind, storage)) == 2
    first, last = chunk_ends(kind, storage)
    cuts = {"inside the first chunk": (payload_cut(storage, 1), first_message_of_frame(ref, 1)),
            "inside the second chunk": (payload_cut(storage, 4), first_message_of_frame(ref, 4)),
            "after the last chunk": (last + 7, len(ref))}
    for n, (where, (size, whole)) in enumerate(cuts.items()):
        assert size < storage.stat().st_size
        warnings = []
        got = read_all(cut_copy(bag, storage, size, tmp_path / f"c{n}"), warnings)
        assert got == ref[:whole], where
        assert len(warnings) == 1 and "recording cut off; read" in warnings[0], (where, warnings)
        assert f"read {whole} messages up to 1970-01-01 00:00:" in warnings[0]
        assert "the rest is unreadable" in warnings[0]


@pytest.mark.parametrize("kind", ["ros1", "mcap", "sqlite3"])
def test_cut_inside_the_header_is_one_clear_error(tmp_path, kind):
    bag, storage = write(tmp_path, kind)
    copy = cut_copy(bag, storage, 20, tmp_path / "c")
    with pytest.raises(DataError) as e:
        read_all(copy)
    assert str(e.value).startswith(f"bag {copy} cannot be read as a ROS 1 or ROS 2 bag: no whole message before "
                                   "the damage (")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["mcap", "sqlite3"])
def test_ros2_bag_without_metadata_reads_whole(tmp_path, kind):
    bag, storage = write(tmp_path, kind)
    ref = read_all(bag)
    (bag / "metadata.yaml").unlink()
    warnings = []
    assert read_all(bag, warnings) == ref
    assert len(warnings) == 1 and warnings[0].startswith(f"bag {bag}: metadata.yaml is missing; read ")
    assert bag_reader.is_bag(bag)   # play still takes the folder for a bag
    warnings.clear()
    assert read_all(storage, warnings) == ref and warnings == []   # its storage file alone: rosbags reads it


def test_sqlite_cut_off_gives_the_rows_before_the_cut(tmp_path):
    bag, storage = write(tmp_path, "sqlite3")
    ref = read_all(bag)
    before = storage.read_bytes()
    for n, size in enumerate((payload_cut(storage, 3), storage.stat().st_size - 4096)):
        warnings = []
        got = read_all(cut_copy(bag, storage, size, tmp_path / f"c{n}", metadata=n == 1), warnings)
        assert 2 <= len(got) < len(ref) and got == ref[:len(got)]
        assert len(warnings) == 1 and "recording cut off; read" in warnings[0]
    assert storage.read_bytes() == before and not list(storage.parent.glob("*-journal"))


@pytest.mark.parametrize("kind,compression", [("ros1", "bz2"), ("ros1", "lz4"), ("mcap", "zstd")])
def test_compressed_chunks_cut_off(tmp_path, kind, compression):
    bag, storage = write(tmp_path, kind, compression)
    ref = read_all(bag)
    first, last = chunk_ends(kind, storage)
    in_first = [topic for topic, _, _ in ref].index("/filler") + 2   # frames 0-2 and the two fillers
    for n, (size, least) in enumerate(((first + (last - first) // 2, in_first), (last + 3, len(ref)))):
        warnings = []
        got = read_all(cut_copy(bag, storage, size, tmp_path / f"c{n}"), warnings)
        assert len(got) >= least and got == ref[:len(got)]
        assert len(warnings) == 1 and "recording cut off" in warnings[0]


def test_training_data_from_a_cut_off_bag(tmp_path, capfd):
    bag, storage = write(tmp_path, "mcap")
    whole = open_dataset(f"bag:{bag}", image_topic="/camera/image", mask_topic="/camera/mask")
    cut = cut_copy(bag, storage, payload_cut(storage, 4), tmp_path / "c")
    capfd.readouterr()
    part = open_dataset(f"bag:{cut}", image_topic="/camera/image", mask_topic="/camera/mask")
    err = capfd.readouterr().err.strip().splitlines()
    assert len(part) == 4 and len(whole) == N
    for i in range(4):
        for a, b in zip(part.load(i), whole.load(i)):
            np.testing.assert_array_equal(a, b)
    assert len(err) == 1 and err[0].startswith(f"warning: bag {cut}: recording cut off; read 10 messages up to "
                                               "1970-01-01 00:00:10.3 UTC, the rest is unreadable")


@pytest.mark.parametrize("kind", ["ros1", "mcap", "sqlite3"])
def test_repair_writes_a_whole_copy_next_to_the_cut_bag(tmp_path, kind, capfd):
    from rosbags.highlevel import AnyReader

    from icnet_ros.tools.repair import main as repair_main

    bag, storage = write(tmp_path, kind)
    assert repair_main([str(bag)]) == 0
    assert capfd.readouterr().out.strip() == f"repair: bag {bag} is whole; nothing to repair"
    cut = cut_copy(bag, storage, payload_cut(storage, 4), tmp_path / "c")
    before = sorted((p.name, p.read_bytes()) for p in ([cut] if cut.is_file() else cut.iterdir()))
    recovered = read_all(cut)
    capfd.readouterr()
    assert repair_main([str(cut)]) == 0
    out = cut.with_name("cut.repaired.bag" if kind == "ros1" else f"{cut.name}_repaired")
    cap = capfd.readouterr()
    assert cap.out.strip() == f"repair: wrote {len(recovered)} messages to {out}"
    assert cap.err.count("recording cut off") == 1
    with AnyReader([out]) as reader:    # rosbags itself reads the copy: it is whole
        assert [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()] == recovered
    assert sorted((p.name, p.read_bytes()) for p in ([cut] if cut.is_file() else cut.iterdir())) == before
    assert repair_main([str(cut)]) == 2     # never over an earlier copy
    assert capfd.readouterr().err.strip().endswith(f"repair: error: --out {out} exists already; remove it or give "
                                                   "another --out")


def test_ros1_chunk_still_being_written_reads_its_whole_records(tmp_path):
    """ROS 1's recorder writes a chunk's length when it closes it, the index position at the end: both say 0."""
    bag, storage = write(tmp_path, "ros1")
    ref = read_all(bag)
    reader = rosbag1.Reader(storage)
    reader.open()
    second = sorted(reader.chunks.values(), key=lambda c: c.datapos)[1]
    reader.close()
    data = bytearray(storage.read_bytes()[:second.datapos + second.datasize])   # no index after it
    data[second.datapos - 4:second.datapos] = bytes(4)      # the placeholder length
    at = data.index(b"index_pos=", 0, 4096) + len(b"index_pos=")
    data[at:at + 8] = bytes(8)                               # and no index yet, as the recorder leaves it
    cut = tmp_path / "open.bag"
    cut.write_bytes(bytes(data))
    warnings = []
    assert read_all(cut, warnings) == ref
    assert len(warnings) == 1 and "cut off inside the chunk" in warnings[0]


def test_sqlite_cut_part_way_through_its_last_page_with_metadata(tmp_path):
    """Rosbags opens this one through SQLite (the last page is there in part): it is checked first."""
    bag, storage = write(tmp_path, "sqlite3")
    ref = read_all(bag)
    warnings = []
    got = read_all(cut_copy(bag, storage, storage.stat().st_size - 100, tmp_path / "c", metadata=True), warnings)
    assert 2 <= len(got) < len(ref) and got == ref[:len(got)]
    assert len(warnings) == 1 and "recording cut off" in warnings[0]
    assert "shorter than the" not in warnings[0]


def test_split_recording_whose_last_file_metadata_yaml_does_not_list(tmp_path):
    """A recorder that rewrites metadata.yaml at each split, killed while it filled the next file."""
    first, first_storage = write(tmp_path / "a", "mcap")
    second, second_storage = write(tmp_path / "b", "mcap")
    bag = tmp_path / "split"
    shutil.copytree(first, bag)
    (bag / first_storage.name).rename(bag / "split_0.mcap")
    meta = (bag / "metadata.yaml").read_text().replace(first_storage.name, "split_0.mcap")
    (bag / "metadata.yaml").write_text(meta)
    listed = read_all(bag)          # what rosbags reads of it: the listed file
    assert listed == read_all(first)
    (bag / "split_1.mcap").write_bytes(second_storage.read_bytes()[:payload_cut(second_storage, 1)])
    warnings = []
    got = read_all(bag, warnings)
    ref = read_all(second)
    assert got == listed + ref[:first_message_of_frame(ref, 1)]
    assert len(warnings) == 1 and warnings[0].startswith(f"bag {bag}: recording cut off; read 16 messages")
    assert "split_1.mcap cut off inside the chunk" in warnings[0]


def test_folder_of_whole_split_files_without_metadata_reads_in_time_order(tmp_path):
    first, first_storage = write(tmp_path / "a", "mcap")
    second, second_storage = write(tmp_path / "b", "mcap")
    bag = tmp_path / "split"
    bag.mkdir()
    shutil.copy(first_storage, bag / "split_0.mcap")
    shutil.copy(second_storage, bag / "split_1.mcap")
    warnings = []
    got = read_all(bag, warnings)
    assert sorted(got, key=lambda m: m[1]) == got and sorted(got) == sorted(read_all(first) + read_all(second))
    assert warnings == [f"bag {bag}: metadata.yaml is missing; read its storage files directly (28 messages)"]


@pytest.mark.parametrize("kind", ["mcap", "sqlite3"])
def test_zstd_compressed_messages_without_metadata(tmp_path, kind):
    """rosbag2's compression_mode: message says so only in metadata.yaml: each message is a zstd frame."""
    bag, storage = write(tmp_path, kind, "message")
    ref = read_all(bag)
    assert ref[0][2].startswith(b"\0\1")        # rosbags gives them as CDR
    (bag / "metadata.yaml").unlink()
    warnings = []
    assert read_all(bag, warnings) == ref and len(warnings) == 1


@pytest.mark.parametrize("kind", ["ros1", "mcap"])
def test_zeros_after_the_cut_end_the_bag_there(tmp_path, kind):
    """A power loss can leave the file longer than what was written, the rest zeros."""
    bag, storage = write(tmp_path, kind)
    ref = read_all(bag)
    first, _ = chunk_ends(kind, storage)
    copy = cut_copy(bag, storage, first, tmp_path / "c")
    zeroed = copy if copy.is_file() else copy / storage.name
    zeroed.write_bytes(zeroed.read_bytes() + bytes(65536))
    warnings = []
    got = read_all(copy, warnings)
    assert got == ref[:[t for t, _, _ in ref].index("/filler") + 2]    # the first chunk's messages
    assert len(warnings) == 1 and "recording cut off" in warnings[0]


def test_zstd_with_rosbags_before_0_11_7_uses_zstandard(monkeypatch):
    """From rosbags 0.11.1 to 0.11.6 zstd is zstandard, not backports.zstd (make test-floor has 0.11.1)."""
    import importlib

    from icnet_ros.data.bags import mcap_scan

    zstandard = pytest.importorskip("zstandard")
    data = np.random.default_rng(0).integers(0, 64, 600_000, dtype=np.uint8).tobytes()  # blocks of 128 KiB
    frame = zstandard.ZstdCompressor().compress(data)
    real = importlib.import_module

    def without_the_newer_modules(name, *args):
        if name in ("compression.zstd", "backports.zstd"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(mcap_scan.importlib, "import_module", without_the_newer_modules)
    assert mcap_scan.zstd_decompress(frame) == data
    part = mcap_scan.zstd_decompress(frame[: len(frame) // 2])     # a cut-off chunk: its whole blocks
    assert 0 < len(part) < len(data) and data.startswith(part)
