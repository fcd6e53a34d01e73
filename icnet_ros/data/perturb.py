"""
Fixed camera changes for scoring robustness (``evaluate --perturb``).

What a frame from another camera does to the scores: the kinds of train's ``--augment``
(transforms.py), each at one fixed strength, so that a score moves only because of it.

    shift=F   the picture moved down by F of the frame's height (negative: up), as a camera
              pitched up (down) moves the horizon; uncovered rows are ignored
    zoom=F    focal length F times the data's: > 1 the centre enlarged, < 1 the frame
              shrunk into the middle with an ignored border
    gamma=G   exposure, every channel value v -> 255 (v / 255) ** G (G < 1: brighter)
    blur=S    defocus, a Gaussian of sigma S pixels
    jpeg=Q    compression artefacts of a JPEG stream at quality Q

No ROS.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .transforms import apply_gamma, jpeg_roundtrip, MEAN_RGB, shift_pair

# name -> (lowest, highest) value accepted: beyond these a frame is no longer a camera's
LIMITS = {"shift": (-0.45, 0.45), "zoom": (0.5, 2.0), "gamma": (0.2, 5.0), "blur": (0.1, 10.0), "jpeg": (1, 100)}


@dataclass(frozen=True)
class Perturbation:
    name: str
    value: float

    def __str__(self) -> str:
        return f"{self.name}={self.value:g}"

    def __call__(self, image: np.ndarray, label: np.ndarray, ignore: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the changed (image, label); geometric changes move the label with the picture."""
        return getattr(self, "_" + self.name)(image, label, ignore)

    def _shift(self, image, label, ignore):
        return shift_pair(image, label, int(round(self.value * label.shape[0])), ignore)

    def _zoom(self, image, label, ignore):
        h, w = label.shape
        f = self.value
        if f >= 1.0:        # the centre h/f x w/f, enlarged back to h x w
            ch, cw = max(1, round(h / f)), max(1, round(w / f))
            y, x = (h - ch) // 2, (w - cw) // 2
            image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
            return (cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR),
                    cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST))
        sh, sw = max(1, round(h * f)), max(1, round(w * f))
        y, x = (h - sh) // 2, (w - sw) // 2
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
        small_label = cv2.resize(label, (sw, sh), interpolation=cv2.INTER_NEAREST)
        pad = (y, h - sh - y, x, w - sw - x)
        return (cv2.copyMakeBorder(small, *pad, cv2.BORDER_CONSTANT, value=MEAN_RGB),
                cv2.copyMakeBorder(small_label, *pad, cv2.BORDER_CONSTANT, value=ignore))

    def _gamma(self, image, label, ignore):
        return apply_gamma(image, self.value), label

    def _blur(self, image, label, ignore):
        return cv2.GaussianBlur(image, (0, 0), self.value), label

    def _jpeg(self, image, label, ignore):
        return jpeg_roundtrip(image, int(self.value)), label


def parse_perturbation(text: str) -> Perturbation:
    """``"shift=0.1"`` -> Perturbation("shift", 0.1); anything else is a one-line ValueError."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if name not in LIMITS or not sep:
        raise ValueError(f"--perturb {text!r}: expected NAME=VALUE with NAME one of {', '.join(LIMITS)}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"--perturb {text!r}: {raw.strip()!r} is not a number") from None
    lo, hi = LIMITS[name]
    if not lo <= value <= hi or (name == "jpeg" and value != int(value)):
        kind = "an integer" if name == "jpeg" else "a number"
        raise ValueError(f"--perturb {text!r}: {name} must be {kind} from {lo:g} to {hi:g}")
    return Perturbation(name, value)
