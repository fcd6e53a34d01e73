"""
Class sets: names, display colours, drivable classes and the ignored label value.

The drivable classes are those a vehicle may drive on; the ignored label value is the
one losses and metrics ignore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ClassSet:
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    drivable_ids: tuple[int, ...]
    ignore_index: int = 255
    name: str = field(default="custom", compare=False)

    def __post_init__(self):
        if not self.names:
            raise ValueError("a class set needs at least one class name")
        if len(self.colors) != len(self.names):
            raise ValueError(f"{len(self.names)} class names but {len(self.colors)} colours")
        bad = [i for i in self.drivable_ids if not 0 <= i < len(self.names)]
        if bad:
            raise ValueError(f"drivable ids {bad} are not class ids 0..{len(self.names) - 1}")
        if 0 <= self.ignore_index < len(self.names):
            raise ValueError(f"ignore index {self.ignore_index} collides with class {self.names[self.ignore_index]!r}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "colors": [list(c) for c in self.colors],
                "drivable_ids": list(self.drivable_ids), "ignore_index": self.ignore_index, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict, name: str = "custom") -> "ClassSet":
        return cls(tuple(d["names"]), tuple(tuple(int(v) for v in c) for c in d["colors"]),
                   tuple(int(i) for i in d.get("drivable_ids", ())), int(d.get("ignore_index", 255)),
                   d.get("name", name))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ClassSet":
        import yaml

        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"classes file {path} does not exist") from None
        except yaml.YAMLError as e:
            raise ValueError(f"classes file {path} is not valid YAML: {e}") from None
        if not isinstance(d, dict) or "names" not in d:
            raise ValueError(f"classes file {path} must be a mapping with 'names' (and 'colors', 'drivable_ids')")
        if "colors" not in d:
            d["colors"] = [PALETTE[i % len(PALETTE)] for i in range(len(d["names"]))]
        try:
            return cls.from_dict(d, path.stem)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"classes file {path}: {e}") from None


# A fallback palette for class sets that bring no colours.
PALETTE = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
           (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
           (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100)]

# CamVid 11 classes as in the SegNet tutorial; id 11 (unlabelled) is ignored.
CAMVID = ClassSet(
    names=("sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence",
           "car", "pedestrian", "bicyclist"),
    colors=((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
            (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
            (0, 128, 192)),
    drivable_ids=(3,),
    ignore_index=11,
    name="camvid",
)

# KITTI road benchmark: road vs everything else; black gt pixels are ignored.
KITTI_ROAD = ClassSet(
    names=("not_road", "road"),
    colors=((255, 0, 0), (255, 0, 255)),
    drivable_ids=(1,),
    ignore_index=255,
    name="kitti_road",
)
