"""
What a run tells the user, from rank 0.

The log lines, metrics.csv, val_scores.jsonl, TensorBoard (tb/), the per-epoch
preview PNGs and curves.png.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from .validation import drivable_iou, predict
from ..classes import ClassSet
from ..data.damaged import Damaged
from ..inference.checkpoint import ModelMeta
from ..nn.model import ICNet

CSV_HEADER = ["epoch", "iteration", "lr", "train_loss", "val_miou", "val_pixel_acc", "seconds", "damaged"]


@torch.no_grad()
def write_preview(path: Path, model: ICNet, dataset, device, meta: ModelMeta | None, count: int) -> np.ndarray:
    """Write a PNG with one row per frame: image | ground truth | prediction.  Returns it (RGB)."""
    import cv2

    from ..visualize import colorize

    was_training = model.training
    model.eval()
    colors = dataset.classes.colors
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int))
    rows = []
    for i in picks:
        item = dataset[int(i)]
        if isinstance(item, Damaged):   # counted by training or validation when they reach it
            continue
        image, label = item
        pred = predict(model, image, device, meta)
        row = np.concatenate([image.numpy(), colorize(label.numpy().astype(np.uint8), colors),
                              colorize(pred.astype(np.uint8), colors)], axis=1)
        scale = min(1.0, 1440 / row.shape[1])
        if scale < 1:
            row = cv2.resize(row, (round(row.shape[1] * scale), round(row.shape[0] * scale)),
                             interpolation=cv2.INTER_NEAREST)
        rows.append(row)
    model.train(was_training)
    if not rows:
        return np.zeros((8, 8, 3), np.uint8)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return sheet


def read_metrics(csv_path: Path) -> list[dict]:
    if not csv_path.exists():
        return []
    with csv_path.open() as f:
        return list(csv.DictReader(f))


def write_metrics(csv_path: Path, rows: list[dict]) -> None:
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, CSV_HEADER)
        w.writeheader()
        w.writerows(rows)


def plot_curves(csv_path: Path, out: Path) -> None:
    """Loss and validation mIoU per epoch from metrics.csv, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(epochs, [float(r["train_loss"]) for r in rows], marker=".")
    ax[0].set(title="training loss", xlabel="epoch")
    ax[1].plot(epochs, [float(r["val_miou"]) for r in rows], marker=".", color="tab:green")
    ax[1].set(title="validation mIoU", xlabel="epoch", ylim=(0, 1))
    for a in ax:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


class Reporter:
    """
    Rank 0's outputs in ``out``.

    A resumed run keeps metrics.csv's rows up to the epoch it resumes after and
    TensorBoard's steps up to its iteration.
    """

    def __init__(self, out: Path, classes: ClassSet, resume: bool, start_epoch: int, it: int):
        self.out, self.classes = out, classes
        self.csv_path = out / "metrics.csv"
        # Rows after the resumed epoch come from a run that died before saving them.
        write_metrics(self.csv_path, [r for r in read_metrics(self.csv_path) if int(r["epoch"]) <= start_epoch]
                      if resume else [])
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / "tb"), purge_step=it if resume else None)

    def step(self, loss: float, lr: float, it: int) -> None:
        """Record a window of training steps' mean loss."""
        self.writer.add_scalar("train/loss", loss, it)
        self.writer.add_scalar("train/lr", lr, it)

    def epoch(self, epoch: int, epochs: int, it: int, lr: float, train_loss: float, scores: tuple[float, float],
              per_source: dict, seconds: float, damaged=None) -> None:
        """
        Report epoch ``epoch`` (from 0) done.

        Writes its log lines, metrics.csv row and TensorBoard scalars, and each validation
        source's scores in val_scores.jsonl; the damaged samples left out so far
        (``damaged``, DamagedSamples) are counted in the row and listed in damaged.json.
        """
        miou, acc = scores
        print(f"epoch {epoch + 1}/{epochs}  loss {train_loss:.4f}  val mIoU {miou:.4f}  "
              f"acc {acc:.4f}  lr {lr:.2e}  {seconds:.0f}s", flush=True)
        if len(per_source) > 1 or any(self.classes.drivable_ids for _ in per_source):
            for name, c in per_source.items():
                print(f"    {name}: mIoU {c.miou():.4f}  drivable IoU {drivable_iou(c, self.classes):.4f}", flush=True)
        with self.csv_path.open("a", newline="") as f:
            csv.writer(f).writerow([epoch + 1, it, f"{lr:.6g}", f"{train_loss:.6f}", f"{miou:.6f}",
                                    f"{acc:.6f}", f"{seconds:.1f}", len(damaged.found) if damaged else 0])
        if damaged is not None and damaged.found:
            (self.out / "damaged.json").write_text(json.dumps(
                {"total": damaged.total, "max_bad": damaged.max_bad, "damaged": damaged.as_list()}, indent=2) + "\n")
        self.writer.add_scalar("epoch/train_loss", train_loss, epoch + 1)
        if per_source:
            self.writer.add_scalar("val/miou", miou, epoch + 1)
            self.writer.add_scalar("val/pixel_accuracy", acc, epoch + 1)
            self._val_scores(epoch, per_source)

    def _val_scores(self, epoch: int, per_source: dict) -> None:
        classes = self.classes
        for k, (name, c) in enumerate(per_source.items()):
            tag = "" if len(per_source) == 1 else f"_{k}"
            self.writer.add_scalar(f"val{tag}/drivable_iou", drivable_iou(c, classes), epoch + 1)
            for cname, v in c.class_iou(classes.names).items():
                if v is not None:
                    self.writer.add_scalar(f"val_iou{tag}/{cname}", v, epoch + 1)
        with (self.out / "val_scores.jsonl").open("a") as f:
            f.write(json.dumps({"epoch": epoch + 1, "sources": {
                name: {"miou": c.miou(), "drivable_iou": drivable_iou(c, classes),
                       "class_iou": c.class_iou(classes.names)} for name, c in per_source.items()}}) + "\n")

    def preview(self, epoch: int, model: ICNet, dataset, device, meta: ModelMeta, count: int) -> None:
        """previews/epoch_NNN.png (and in TensorBoard): ``count`` frames of ``dataset``."""
        sheet = write_preview(self.out / "previews" / f"epoch_{epoch + 1:03d}.png", model, dataset, device, meta, count)
        self.writer.add_image("preview", sheet, epoch + 1, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        plot_curves(self.csv_path, self.out / "curves.png")
