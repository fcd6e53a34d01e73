"""
Segmentation scores.

* ``ConfusionMatrix``: per-class IoU, mIoU and pixel accuracy.
* ``CalledDrivable``: per ground-truth class, the share of its pixels in the drivable
  mask (false drivable on sidewalks, parking, barriers: the errors a planner fears).
* ``RoadEval``: the KITTI road benchmark's pixel metrics (MaxF, AP, and precision, recall,
  FPR, FNR at the MaxF operating point) computed the way its devkit does: the drivable
  probability is quantised to 8 bits (the devkit reads it from a PNG), thresholded at
  k/255 for k = 0..255, FN/FP counted only inside the valid area and summed over all
  images before any ratio is taken.
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = np.arange(256) / 255.0


class ConfusionMatrix:
    """
    Rows: ground truth, columns: prediction.

    Pixels labelled ``ignore_index`` (or any id outside the class range) are not
    counted.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(pred).reshape(-1).astype(np.int64)
        target = np.asarray(target).reshape(-1).astype(np.int64)
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.size} pixels but the label has {target.size}")
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        idx = target[keep] * self.num_classes + np.clip(pred[keep], 0, self.num_classes - 1)
        self.matrix += np.bincount(idx, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class absent from both labels and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean over the classes that occur (in labels or predictions); NaN if none does."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.diag(self.matrix).sum() / total) if total else float("nan")

    def group_iou(self, ids) -> float:
        """Return the IoU of several classes taken as one (e.g. every drivable class); NaN if absent."""
        ids = list(ids)
        if not ids:
            return float("nan")
        tp = self.matrix[np.ix_(ids, ids)].sum()
        union = self.matrix[ids, :].sum() + self.matrix[:, ids].sum() - tp
        return float(tp / union) if union else float("nan")

    def class_iou(self, names) -> dict[str, float | None]:
        return {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, self.iou())}


class CalledDrivable:
    """Per ground-truth class: its pixels, and how many of them the drivable mask holds."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.ignore_index = ignore_index
        self.pixels = np.zeros(num_classes, np.int64)
        self.called = np.zeros(num_classes, np.int64)

    def update(self, drivable: np.ndarray, target: np.ndarray) -> None:
        target = np.asarray(target, np.int64).reshape(-1)    # no copy when it is int64 already
        drivable = np.asarray(drivable, bool).reshape(-1)
        if drivable.shape != target.shape:
            raise ValueError(f"drivable mask has {drivable.size} pixels but the label has {target.size}")
        n = len(self.pixels)
        keep = (target != self.ignore_index) & (target >= 0) & (target < n)
        self.pixels += np.bincount(target[keep], minlength=n)
        self.called += np.bincount(target[keep & drivable], minlength=n)

    def shares(self, names) -> dict[str, float | None]:
        """{class: share of its pixels called drivable}; None for a class with no pixels."""
        return {name: (float(c / p) if p else None) for name, p, c in zip(names, self.pixels, self.called)}


def quantise(prob: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] to the 0..255 levels a KITTI submission PNG holds."""
    return np.clip(np.rint(np.asarray(prob, np.float64) * 255.0), 0, 255).astype(np.uint8)


class RoadEval:
    """
    KITTI road pixel evaluation, accumulated over images.

    Keeps two 256-bin histograms of quantised drivable probability: one for road pixels
    and one for non-road pixels, both inside the valid area.  At threshold k/255 a pixel
    is called road when its level is >= k, so FN(k) = road pixels below k and FP(k) =
    non-road pixels at or above k: exactly the devkit's cumulative histograms.
    """

    def __init__(self):
        self.pos = np.zeros(256, np.int64)
        self.neg = np.zeros(256, np.int64)

    def update(self, prob: np.ndarray, road: np.ndarray, valid: np.ndarray | None = None) -> None:
        prob, road = np.asarray(prob), np.asarray(road, bool)
        if prob.shape != road.shape:
            raise ValueError(f"probability map is {prob.shape} but the ground truth is {road.shape}")
        valid = np.ones(road.shape, bool) if valid is None else np.asarray(valid, bool)
        q = quantise(prob)
        self.pos += np.bincount(q[road & valid], minlength=256)
        self.neg += np.bincount(q[~road & valid], minlength=256)

    def merge(self, other: "RoadEval") -> None:
        self.pos += other.pos
        self.neg += other.neg

    def curves(self) -> dict[str, np.ndarray]:
        """TP, FP, FN, TN (int) for each of the 256 thresholds."""
        fn = np.concatenate([[0], np.cumsum(self.pos)[:-1]])
        fp = np.cumsum(self.neg[::-1])[::-1]
        tp = self.pos.sum() - fn
        tn = self.neg.sum() - fp
        return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}

    def scores(self) -> dict[str, float] | None:
        """maxf, ap, precision, recall, fpr, fnr, threshold; None without road pixels."""
        P, N = int(self.pos.sum()), int(self.neg.sum())
        if P == 0:
            return None
        c = self.curves()
        tp = c["tp"].astype(np.float64)
        recall = tp / P
        precision = tp / (tp + c["fp"] + 1e-10)
        keep = ~((recall == 0) & (precision == 0))  # a suffix of high thresholds
        recall, precision = recall[keep], precision[keep]
        # Pascal VOC 11-point average precision (recall levels 0, 0.1, .. 1.0)
        ap = float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0
                            for r in np.arange(0, 1.1, 0.1)]))
        f = 2 * precision * recall / (precision + recall + 1e-10)
        k = int(f.argmax())
        TP, FP, FN, TN = (float(c[n][keep][k]) for n in ("tp", "fp", "fn", "tn"))
        return {"maxf": float(f[k]), "ap": ap,
                "precision": TP / (TP + FP) if TP + FP else 0.0, "recall": TP / P,
                "fpr": FP / N if N else 0.0, "fnr": FN / P,
                "threshold": float(THRESHOLDS[keep][k])}
