"""
Damaged samples: skipped, named, counted, and limited.

One unreadable PNG among thousands should not stop a long training run, nor should a
folder that is mostly broken take hours to say so.  So:

* before the first epoch, ``prescan`` reads each file's header (PNG IHDR, JPEG SOF: the
  size, no pixel decoding): an empty file, a header that does not parse (then the file is
  decoded to name the fault exactly as loading would), or a mask whose size differs from
  its image's is damaged and left out;
* while training, a sample that still fails to decode comes back from the dataset as a
  ``Damaged`` marker, which the loader's collate drops and hands to the main process (a
  DataLoader worker is a process of its own: it cannot count for the run);
* ``DamagedSamples`` keeps the list: one warning line per file, and a DataError (one
  line) when their share passes ``--max-bad`` or, with ``--strict``, at the first.

Wrong class ids, label-map misses and other configuration faults are not damage: they
stay errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import struct
import sys

from .image_io import DataError, Encoded

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8"
_STANDALONE = {0x01, *range(0xD0, 0xDA)}       # markers without a length: TEM, RSTn, SOI, EOI
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class DamagedSample(DataError):
    """An image or mask that cannot be decoded, or a mask whose size differs from its image's."""

    def __init__(self, message: str, file: object = ""):
        super().__init__(message)
        self.file = str(file)


@dataclass(frozen=True)
class Damaged:
    """What the dataset returns in place of a damaged sample (picklable, for DataLoader workers)."""

    file: str
    reason: str    # one sentence naming the file


def _head(src, n: int) -> bytes:
    if isinstance(src, Encoded):
        return src.data[:n]
    with open(src, "rb") as f:
        return f.read(n)


def _jpeg_size(src) -> tuple[int, int] | None:
    """Return (width, height) from a JPEG's SOF marker, walking the segments (no decoding)."""
    data = src.data if isinstance(src, Encoded) else None
    f = None if data is not None else open(src, "rb")
    try:
        at = 2
        while True:
            seg = data[at:at + 9] if data is not None else (f.seek(at), f.read(9))[1]
            if len(seg) < 4 or seg[0] != 0xFF:
                return None
            marker, (length,) = seg[1], struct.unpack(">H", seg[2:4])
            if marker in _SOF:
                if len(seg) < 9:
                    return None
                h, w = struct.unpack(">HH", seg[5:9])
                return (w, h) if w and h else None
            if marker == 0xFF:        # fill byte
                at += 1
                continue
            at += 2 if marker in _STANDALONE else 2 + length
    finally:
        if f is not None:
            f.close()


def header_size(src):
    """
    Return a PNG's or JPEG's (width, height) from its header, without decoding it.

    'empty' for a zero-byte file, 'bad' for a header that does not parse (or a format
    that is not PNG/JPEG where the name says it is), None for other formats (not checked).
    """
    head = _head(src, 32)
    if not head:
        return "empty"
    if head.startswith(PNG):
        if len(head) < 24 or head[12:16] != b"IHDR":
            return "bad"
        w, h = struct.unpack(">II", head[16:24])
        return (w, h) if w and h else "bad"
    if head.startswith(JPEG):
        return _jpeg_size(src) or "bad"
    name = src.name if isinstance(src, Encoded) else Path(src).name
    return "bad" if name.lower().endswith((".png", ".jpg", ".jpeg")) else None


class DamagedSamples:
    """
    The run's damaged samples: one warning line each, and the limit.

    ``total`` is the number of samples read in all (training and validation); the run
    stops once more than ``max_bad`` of them are damaged, or at the first with ``strict``.
    """

    def __init__(self, max_bad: float = 0.01, strict: bool = False, warn=None):
        if not 0 <= max_bad <= 1:
            raise DataError(f"--max-bad {max_bad} must be a fraction between 0 and 1")
        self.max_bad, self.strict = max_bad, strict
        self.total = 0
        self.found: dict[str, str] = {}       # file -> reason, in the order found
        self.warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))

    def add(self, damaged: list[Damaged], quiet: bool = False) -> None:
        """Count newly found damaged samples; ``quiet``: check the limit before warning (the pre-scan)."""
        new = [d for d in damaged if d.file not in self.found]
        for d in new:
            if self.strict:
                raise DataError(f"{d.reason} (--strict stops at the first damaged sample)")
            self.found[d.file] = d.reason
            if not quiet:
                self.warn(f"warning: skipped a damaged sample: {d.reason}")
        self.check(new[0].reason if new else "")
        if quiet:
            for d in new:
                self.warn(f"warning: skipped a damaged sample: {d.reason}")

    def check(self, example: str = "") -> None:
        n = len(self.found)
        if n and n > self.max_bad * self.total:
            raise DataError(f"{example or next(iter(self.found.values()))}; {n} of {self.total} samples are "
                            f"damaged ({100 * n / max(self.total, 1):.1f} %), more than --max-bad {self.max_bad:g} "
                            f"allows")

    def summary(self) -> str:
        """Return one line: how many were skipped, and which (the first ten)."""
        names = list(self.found)
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        return (f"skipped {len(names)} damaged sample{'s' if len(names) != 1 else ''} of {self.total}: "
                + ", ".join(names[:10]) + more)

    def as_list(self) -> list[dict]:
        return [{"file": f, "reason": r} for f, r in self.found.items()]


def prescan(dataset) -> list[Damaged]:
    """
    Return the damaged samples of a dataset found from their files' headers, and drop them from it.

    A header that does not parse is decoded to name the fault as loading would.
    """
    bad, keep = [], []
    for i, s in enumerate(dataset.samples):
        found = _check(dataset, i, s)
        (bad if found else keep).append(found or s)
    if bad:
        dataset.samples[:] = keep   # in place: copies made with with_augment share the list
    return bad


def _check(dataset, i: int, s) -> Damaged | None:
    sizes = {}
    for role, src in (("image", s.image), ("mask", s.label)):
        try:
            sizes[role] = header_size(src)
        except OSError as e:
            return Damaged(str(src), f"{role} {src} cannot be read ({e.strerror})")
        if sizes[role] == "empty":
            return Damaged(str(src), f"{role} {src} is empty (0 bytes)")
    if "bad" in sizes.values():
        try:
            dataset.load(i)
        except DamagedSample as e:
            return Damaged(e.file, str(e))
        return None
    image, mask = sizes["image"], sizes["mask"]
    if image and mask and image != mask:
        return Damaged(str(s.label), f"mask {s.label} is {mask[0]}x{mask[1]} but image {s.image} is "
                                     f"{image[0]}x{image[1]}")
    return None
