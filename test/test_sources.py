"""Several sources in one run: spec options, sampling shares, held-out tails."""

import numpy as np
import pytest

from icnet_ros.data.datasets import DataError
from icnet_ros.data.sources import MixSampler, parse_source, split_tail


def test_options_parse():
    s = parse_source(["camvid:d:train", "weight=0.3", "labels=m.yaml", "val=0.1"])
    assert (s.spec, s.weight, s.labels, s.val) == ("camvid:d:train", 0.3, "m.yaml", 0.1)
    assert parse_source("kitti:x").weight is None


@pytest.mark.parametrize("tok, words", [("weight=-1", "positive"), ("weight=abc", "not a number"),
                                        ("val=1.5", "between 0 and 1"), ("size=3", "not one of"),
                                        ("labels=", "not one of"), ("weight", "not one of")])
def test_bad_options_are_one_line(tok, words):
    with pytest.raises(DataError) as e:
        parse_source(["kitti:x", tok])
    assert words in str(e.value) and "kitti:x" in str(e.value)


def test_shares_are_met_each_epoch_and_differ_between_epochs():
    sizes = [100, 10, 50]
    s = MixSampler(sizes, [0.5, 0.3, 0.2], num_samples=200, seed=1)
    assert s.counts() == [100, 60, 40] and len(s) == 200
    first = list(s)
    src = np.searchsorted(np.cumsum(sizes), first, side="right")
    assert np.bincount(src, minlength=3).tolist() == [100, 60, 40]
    assert all(0 <= i < sum(sizes) for i in first)
    # the small source is drawn with repeats only because it must be: each item 6 times
    assert np.bincount(np.array(first)[src == 1] - 100).tolist() == [6] * 10
    assert list(s) == first                       # same epoch, same draw (exact resume)
    s.set_epoch(1)
    assert list(s) != first


def test_ranks_split_the_draw():
    parts = [list(MixSampler([30, 30], [1, 3], 40, seed=0, rank=r, world=2)) for r in range(2)]
    whole = MixSampler([30, 30], [1, 3], 40, seed=0)._indices()
    assert len(parts[0]) == len(parts[1]) == 20
    assert sorted(parts[0] + parts[1]) == sorted(whole)


def test_tail_split():
    train, held = split_tail(list(range(20)), 0.1, "x")
    assert held == [18, 19] and train == list(range(18))
    with pytest.raises(DataError, match="leaves no training images"):
        split_tail([1], 0.5, "x")


def test_val_pattern_holds_out_whole_sequences(tmp_path):
    from pathlib import Path

    from icnet_ros.data.datasets import Sample
    from icnet_ros.data.sources import split_held

    class Data:
        samples = [Sample(Path(f"/d/{n}.png"), Path(f"/m/{n}.png"))
                   for n in ("0001TP_1", "0006R0_1", "0006R0_2", "0016E5_1")]

    src = parse_source(["camvid:data:train", "val=0006R0_*"])
    assert src.val == "0006R0_*" and src.held_name() == "camvid:data:train (0006R0_*)"
    assert split_held(Data(), src) == ([0, 3], [1, 2])
    assert parse_source(["x", "val=0.1"]).held_name() == "x (last 0.1)"
    with pytest.raises(DataError, match=r"val=Seq05VD_\* matches none of its 4 image names"):
        split_held(Data(), parse_source(["x", "val=Seq05VD_*"]))
    with pytest.raises(DataError, match="matches all of its 4 images"):
        split_held(Data(), parse_source(["x", "val=*"]))
    with pytest.raises(DataError, match="must be a fraction"):
        parse_source(["x", "val=1.5"])
