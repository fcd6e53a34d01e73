"""Label maps: source ids -> model classes, with every problem as one clear line."""

from pathlib import Path

import numpy as np
import pytest

from icnet_ros.classes import ClassSet
from icnet_ros.data.label_maps import LabelMap, LabelMapError, MappedDecode

CONFIG = Path(__file__).resolve().parent.parent / "config"
ROAD = ClassSet.from_yaml(CONFIG / "road_classes.yaml")


def write(tmp_path, text, name="map.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_ids_map_to_classes_and_ignore(tmp_path):
    m = LabelMap.from_yaml(write(tmp_path, "map:\n  0: road\n  1: sky\n  7: ignore\n"), ROAD)
    out = m(np.array([[0, 1, 7]], np.uint8))
    assert out.dtype == np.uint8
    assert out.tolist() == [[ROAD.names.index("road"), ROAD.names.index("sky"), 255]]


def test_an_unlisted_id_names_the_mask_and_the_map(tmp_path):
    path = write(tmp_path, "map:\n  0: road\n")
    m = LabelMap.from_yaml(path, ROAD)
    with pytest.raises(LabelMapError) as e:
        m(np.array([[0, 5, 9]], np.uint8), "masks/a.png")
    msg = str(e.value)
    assert "masks/a.png" in msg and "id 5" in msg and str(path) in msg and "\n" not in msg


@pytest.mark.parametrize("text, words", [
    ("map: [1, 2\n", "not valid YAML"),
    ("- just a list\n", "non-empty 'map'"),
    ("map: {}\n", "non-empty 'map'"),
    ("map:\n  0: lawn\n", "'lawn'"),
    ("map:\n  300: road\n", "0..255"),
    ("map:\n  road: 0\n", "0..255"),
])
def test_bad_files_are_one_line(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(LabelMapError) as e:
        LabelMap.from_yaml(path, ROAD)
    assert words in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(LabelMapError, match="does not exist"):
        LabelMap.from_yaml(tmp_path / "gone.yaml", ROAD)


@pytest.mark.parametrize("name, ids", [
    ("camvid", range(12)),
    ("cityscapes", [*range(19), 255]),
    ("idd_lite", [*range(7), 255]),
    ("cityscapes_ext", [*range(25), 255]),
])
def test_shipped_maps_cover_each_dataset_and_keep_road_drivable(name, ids):
    m = LabelMap.from_yaml(CONFIG / "label_maps" / f"{name}.yaml", ROAD)
    out = m(np.array([list(ids)], np.uint8))[0]
    road = ROAD.names.index("road")
    assert ROAD.drivable_ids == (road,)
    # exactly the dataset's drivable id becomes road
    drivable_src = {"camvid": 3, "cityscapes": 0, "idd_lite": 0, "cityscapes_ext": 0}[name]
    assert [i for i, o in zip(ids, out) if o == road] == [drivable_src]
    # every model class is fed by every dataset
    assert set(out.tolist()) - {255} == set(range(ROAD.num_classes))


def test_cityscapes_ext_teaches_what_is_not_road():
    """labels_ext keeps ground, parking, rail track, guard rail, bridge and tunnel: none of them is road."""
    ext = LabelMap.from_yaml(CONFIG / "label_maps" / "cityscapes_ext.yaml", ROAD)
    plain = LabelMap.from_yaml(CONFIG / "label_maps" / "cityscapes.yaml", ROAD)
    ids = np.array([list(range(19)) + [255]], np.uint8)
    np.testing.assert_array_equal(ext(ids), plain(ids))            # ids 0..18 as labels/ maps them
    out = ext(np.array([[19, 20, 21, 22, 23, 24]], np.uint8))[0]
    assert [ROAD.names[i] for i in out] == ["ground", "ground", "ground", "roadside_object",
                                            "building_vegetation", "building_vegetation"]
    with pytest.raises(LabelMapError, match="id 25"):
        ext(np.array([[25]], np.uint8), "labels_ext/x.png")


def test_mapped_decode_applies_after_the_reader(tmp_path):
    m = LabelMap.from_yaml(write(tmp_path, "map:\n  0: ground\n  1: road\n"), ROAD)
    decode = MappedDecode(lambda src: np.array([[1, 0]], np.uint8), m)
    assert decode("x").tolist() == [[0, 1]]


def test_cityscapes_ext_class_file_names_every_id_of_the_label_map():
    """config/cityscapes_ext_classes.yaml: the labels_ext ids as a data class set, road the one drivable class."""
    import yaml

    ids = ClassSet.from_yaml(CONFIG / "cityscapes_ext_classes.yaml")
    ext_map = yaml.safe_load((CONFIG / "label_maps" / "cityscapes_ext.yaml").read_text())["map"]
    assert len(ids.names) == len([k for k in ext_map if k != 255]) == 25
    assert ids.names[19:] == ("ground", "parking", "rail_track", "guard_rail", "bridge", "tunnel")
    assert [ids.names[i] for i in ids.drivable_ids] == ["road"] and ids.ignore_index == 255
