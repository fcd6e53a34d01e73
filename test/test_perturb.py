"""evaluate --perturb's camera changes (data/perturb.py): what each does to a frame and its label."""

import numpy as np
import pytest

from icnet_ros.data.perturb import parse_perturbation
from icnet_ros.data.transforms import MEAN_RGB

IGNORE = 255


def frame(h=40, w=60):
    """Return a random image, and a label whose class is the row // 10 (rows 0-9: 0, ...)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    label = np.repeat((np.arange(h) // 10).astype(np.uint8)[:, None], w, axis=1)
    return image, label


@pytest.mark.parametrize("f", [0.25, -0.25])
def test_shift_moves_picture_and_label_together(f):
    image, label = frame()
    out, lab = parse_perturbation(f"shift={f}")(image, label, IGNORE)
    assert out.shape == image.shape and lab.shape == label.shape
    if f > 0:   # down by 10 rows: the first 10 rows are new, ignored, mean colour
        assert (lab[:10] == IGNORE).all() and (out[:10] == MEAN_RGB).all()
        assert np.array_equal(out[10:], image[:-10]) and np.array_equal(lab[10:], label[:-10])
    else:
        assert (lab[-10:] == IGNORE).all()
        assert np.array_equal(out[:-10], image[10:]) and np.array_equal(lab[:-10], label[10:])


def test_zoom_in_enlarges_the_centre_and_zoom_out_leaves_an_ignored_border():
    image, label = frame()
    out, lab = parse_perturbation("zoom=2")(image, label, IGNORE)
    assert out.shape == image.shape
    assert set(np.unique(lab)) == {1, 2}          # the middle half of the rows: classes 1 and 2 only
    out, lab = parse_perturbation("zoom=0.5")(image, label, IGNORE)
    assert out.shape == image.shape
    assert (lab[:10] == IGNORE).all() and (lab[:, :15] == IGNORE).all() and (lab[10:30, 15:45] != IGNORE).all()
    assert (out[:10] == MEAN_RGB).all()


def test_photometric_changes_leave_the_label_alone():
    image, label = frame()
    for spec in ("gamma=0.5", "blur=2", "jpeg=20"):
        out, lab = parse_perturbation(spec)(image, label, IGNORE)
        assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
        assert lab is label
    assert parse_perturbation("gamma=0.5")(image, label, IGNORE)[0].mean() > image.mean()   # brighter
    assert parse_perturbation("blur=2")(image, label, IGNORE)[0].std() < image.std()        # smoother
    assert np.array_equal(parse_perturbation("gamma=1")(image, label, IGNORE)[0], image)


@pytest.mark.parametrize("spec", ["shift", "shift=", "shift=abc", "warp=1", "shift=0.9", "zoom=0", "jpeg=0",
                                  "jpeg=50.5", "gamma=nan", "blur=inf"])
def test_bad_specs_are_one_line_errors_naming_the_option(spec):
    with pytest.raises(ValueError) as e:
        parse_perturbation(spec)
    msg = str(e.value)
    assert msg.startswith("--perturb ") and "\n" not in msg
