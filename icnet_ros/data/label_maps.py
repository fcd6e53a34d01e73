"""
Label maps: one dataset's class ids -> a model's class names.

So that datasets with different class sets (CamVid, Cityscapes trainIds, IDD level-1)
train and score one model.

A label map is a YAML file::

    name: cityscapes            # optional, for messages
    map:                        # source id -> model class name, or "ignore"
      0: road
      1: ground
      255: ignore

Every id a mask holds must be listed (an unlisted id is an error naming the mask, not a
silent guess).  Applying the map is one 256-entry lookup per mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..classes import ClassSet

IGNORE = "ignore"
_UNLISTED = -1


class LabelMapError(ValueError):
    """A label map file that cannot be read or does not fit the model's classes."""


class LabelMap:
    def __init__(self, mapping: dict[int, str], classes: ClassSet, name: str = "label map"):
        self.name, self.classes = name, classes
        index = {n: i for i, n in enumerate(classes.names)}
        lut = np.full(256, _UNLISTED, np.int16)
        for src, dst in mapping.items():
            if not isinstance(src, int) or not 0 <= src <= 255:
                raise LabelMapError(f"{name}: source id {src!r} is not an integer 0..255")
            if dst == IGNORE:
                lut[src] = classes.ignore_index
            elif dst in index:
                lut[src] = index[dst]
            else:
                raise LabelMapError(f"{name}: id {src} maps to {dst!r}, which is not 'ignore' or one of the "
                                    f"model's classes ({', '.join(classes.names)})")
        self.lut = lut

    @classmethod
    def from_yaml(cls, path: str | Path, classes: ClassSet) -> "LabelMap":
        import yaml

        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise LabelMapError(f"label map {path} does not exist") from None
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise LabelMapError(f"label map {path} is not valid YAML ({str(e).splitlines()[0]})") from None
        mapping = doc.get("map") if isinstance(doc, dict) else None
        if not isinstance(mapping, dict) or not mapping:
            raise LabelMapError(f"label map {path} must be a mapping with a non-empty 'map' of id: class name")
        return cls(mapping, classes, str(path))

    def __call__(self, label: np.ndarray, source: object = "mask") -> np.ndarray:
        """uint8 source ids -> uint8 model ids (ignore where the map says so)."""
        out = self.lut[label]
        if (out == _UNLISTED).any():
            bad = sorted(set(np.unique(label[out == _UNLISTED]).tolist()))
            raise LabelMapError(f"mask {source} holds id {bad[0]}, which label map {self.name} does not list"
                                + (f" (nor {', '.join(map(str, bad[1:4]))})" if len(bad) > 1 else ""))
        return out.astype(np.uint8)


class MappedDecode:
    """A dataset's mask decoder followed by a label map (picklable for DataLoader workers)."""

    def __init__(self, decode, label_map: LabelMap):
        self.decode, self.label_map = decode, label_map

    def __call__(self, src) -> np.ndarray:
        return self.label_map(self.decode(src), src)
