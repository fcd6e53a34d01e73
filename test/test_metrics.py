import numpy as np
import pytest

from icnet_ros.metrics import ConfusionMatrix, quantise, RoadEval


def test_confusion_matrix_hand_case():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, target)
    # rows gt, cols pred; the ignored pixel (predicted 2) is not counted
    np.testing.assert_array_equal(cm.matrix, [[1, 1, 0], [0, 3, 0], [1, 0, 1]])
    # IoU: class 0: 1 / (2 + 2 - 1) = 1/3; class 1: 3 / (3 + 4 - 3) = 3/4; class 2: 1 / (2 + 1 - 1) = 1/2
    np.testing.assert_allclose(cm.iou(), [1 / 3, 3 / 4, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)
    assert cm.class_iou(["a", "b", "c"]) == pytest.approx({"a": 1 / 3, "b": 3 / 4, "c": 1 / 2})


def test_absent_class_is_left_out_of_miou_and_merge_adds():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1]), np.array([0, 0, 1]))
    assert np.isnan(cm.iou()[2]) and cm.miou() == 1.0
    assert cm.class_iou(["a", "b", "c"])["c"] is None
    other = ConfusionMatrix(3)
    other.update(np.array([2]), np.array([0]))
    cm.merge(other)
    assert cm.matrix.sum() == 4 and cm.matrix[0, 2] == 1
    with pytest.raises(ValueError, match="pixels"):
        cm.update(np.zeros(3), np.zeros(4))


def test_empty_matrix_scores_are_nan():
    cm = ConfusionMatrix(2)
    assert np.isnan(cm.miou()) and np.isnan(cm.pixel_accuracy())


def test_kitti_road_hand_case():
    """
    4 valid pixels, 2 road.

    Levels 255, 128, 128, 0.  k = 0:        all called road        TP 2 FP 2 -> P 1/2,
    R 1,   F 2/3 k = 1..128:   {255, 128, 128}        TP 2 FP 1 -> P 2/3, R 1,   F 4/5
    k = 129..255: {255}                  TP 1 FP 0 -> P 1,   R 1/2, F 2/3 MaxF 0.8
    first reached at k = 1.  11-point AP: recall >= 0..0.5 (6 levels) max P 1, recall
    >= 0.6..1.0 (5 levels) max P 2/3 -> (6 + 10/3) / 11.
    """
    prob = np.array([[255, 128, 128, 0, 0]]) / 255.0
    road = np.array([[1, 1, 0, 0, 1]], bool)
    valid = np.array([[1, 1, 1, 1, 0]], bool)  # the last road pixel (prob 0) is outside the valid area
    ev = RoadEval()
    ev.update(prob, road, valid)
    s = ev.scores()
    assert s["maxf"] == pytest.approx(0.8)
    assert s["ap"] == pytest.approx((6 + 10 / 3) / 11)
    assert s["threshold"] == pytest.approx(1 / 255)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == 1.0
    assert s["fpr"] == pytest.approx(1 / 2) and s["fnr"] == 0.0


def test_kitti_sums_counts_over_images_before_ratios():
    rng = np.random.default_rng(1)
    probs = [rng.random((6, 7)) for _ in range(3)]
    roads = [rng.random((6, 7)) > 0.5 for _ in range(3)]
    valids = [rng.random((6, 7)) > 0.2 for _ in range(3)]
    per_image = RoadEval()
    for p, r, v in zip(probs, roads, valids):
        per_image.update(p, r, v)
    joined = RoadEval()
    joined.update(np.concatenate(probs), np.concatenate(roads), np.concatenate(valids))
    assert per_image.scores() == joined.scores()


def devkit_reference(probs, roads, valids):
    """
    Compute the devkit's evalExp / pxEval_maximizeFMeasure written out with np.histogram.

    It runs on 8-bit probability maps, as an independent check of RoadEval's cumulative
    counts.
    """
    thres = np.arange(256) / 255.0
    edges = np.concatenate(([-np.inf], thres, [np.inf]))
    FN = np.zeros(256)
    FP = np.zeros(256)
    P = N = 0
    for p, r, v in zip(probs, roads, valids):
        p = quantise(p) / 255.0
        FN += np.cumsum(np.histogram(p[r & v], bins=edges)[0])[:256]
        FP += np.flipud(np.cumsum(np.flipud(np.histogram(p[~r & v], bins=edges)[0])))[1:257]
        P += int((r & v).sum())
        N += int((~r & v).sum())
    TP = P - FN
    recall = TP / P
    precision = TP / (TP + FP + 1e-10)
    ok = ~((recall == 0) & (precision == 0))
    recall, precision = recall[ok], precision[ok]
    ap = np.mean([max(precision[recall >= i]) for i in np.arange(0, 1.1, 0.1)])
    F = 2 * precision * recall / (precision + recall + 1e-10)
    k = F.argmax()
    return F[k], ap, thres[k], TP[ok][k] / P, FP[ok][k] / N


def test_kitti_matches_devkit_reference_on_random_maps():
    rng = np.random.default_rng(7)
    probs, roads, valids = [], [], []
    for _ in range(4):
        road = rng.random((20, 30)) > 0.6
        probs.append(np.clip(road * 0.6 + rng.random((20, 30)) * 0.5, 0, 1))
        roads.append(road)
        valids.append(rng.random((20, 30)) > 0.1)
    ev = RoadEval()
    for p, r, v in zip(probs, roads, valids):
        ev.update(p, r, v)
    s = ev.scores()
    maxf, ap, thr, rec, fpr = devkit_reference(probs, roads, valids)
    assert s["maxf"] == pytest.approx(maxf) and s["ap"] == pytest.approx(ap)
    assert s["threshold"] == pytest.approx(thr) and s["recall"] == pytest.approx(rec)
    assert s["fpr"] == pytest.approx(fpr)
    assert 0.5 < s["maxf"] < 1.0


def test_perfect_and_roadless_cases():
    ev = RoadEval()
    road = np.array([[1, 1, 0, 0]], bool)
    ev.update(road.astype(float), road)
    s = ev.scores()
    assert s["maxf"] == pytest.approx(1.0) and s["ap"] == pytest.approx(1.0) and s["fpr"] == 0.0
    none = RoadEval()
    none.update(np.zeros((2, 2)), np.zeros((2, 2), bool))
    assert none.scores() is None
    with pytest.raises(ValueError, match="ground truth"):
        none.update(np.zeros((2, 2)), np.zeros((2, 3), bool))
