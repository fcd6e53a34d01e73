"""
Training augmentation on numpy arrays.

Random scale, crop (padding labels with the ignore index), horizontal flip and
photometric jitter.  Labels are only ever resized by nearest neighbour: blending class
ids would invent classes at boundaries.
"""

from __future__ import annotations

import cv2
import numpy as np

MEAN_RGB = (124, 116, 104)  # ImageNet mean in 0..255


def resize_pair(image: np.ndarray, label: np.ndarray, size_hw) -> tuple[np.ndarray, np.ndarray]:
    h, w = size_hw
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


class TrainAugment:
    def __init__(self, crop=(360, 480), scale=(0.5, 2.0), flip: bool = True, jitter: float = 0.25,
                 ignore_index: int = 255, base_size=None, base_width: int | None = None):
        self.crop = tuple(crop)
        self.scale = tuple(scale)
        self.flip = flip
        self.jitter = jitter
        self.ignore_index = ignore_index
        self.base_size = base_size  # (H, W) every image is brought to before scaling
        # ... or the width, aspect kept: sources of different resolutions at the scale
        # the deployed model (input_width) sees them.
        self.base_width = base_width

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        if self.base_size:
            image, label = resize_pair(image, label, self.base_size)
        elif self.base_width and self.base_width != label.shape[1]:
            h, w = label.shape
            image, label = resize_pair(image, label, (max(8, round(h * self.base_width / w)), self.base_width))
        s = rng.uniform(*self.scale)
        h, w = label.shape
        image, label = resize_pair(image, label, (max(8, round(h * s)), max(8, round(w * s))))
        image, label = self._crop(image, label, rng)
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        if self.jitter:
            image = self._photometric(image, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def _crop(self, image, label, rng):
        ch, cw = self.crop
        h, w = label.shape
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        if ph or pw:  # pad: image with the mean colour (0 after normalising), label with
            # "ignore" so that padding is never learnt as a class
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=MEAN_RGB)
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=self.ignore_index)
            h, w = label.shape
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        return image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]

    def _photometric(self, image, rng):
        j = self.jitter
        img = image.astype(np.float32)
        img = img * rng.uniform(1 - j, 1 + j)                          # brightness
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - j, 1 + j) + mean           # contrast
        grey = img.mean(axis=2, keepdims=True)
        img = (img - grey) * rng.uniform(1 - j, 1 + j) + grey           # saturation
        return img.clip(0, 255).astype(np.uint8)
