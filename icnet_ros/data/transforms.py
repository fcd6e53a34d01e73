"""
Training augmentation on numpy arrays.

Random scale, crop (padding labels with the ignore index), horizontal flip and
photometric jitter.  Labels are only ever resized by nearest neighbour: blending class
ids would invent classes at boundaries.

Optional camera augmentations (``train --augment``) stand in for cameras the data never
had: ``shift`` moves the frame up or down (mounting height and pitch put the horizon at
another row), ``exposure`` a gamma curve, ``blur`` defocus and motion, ``jpeg``
compression artefacts of a compressed image stream.  Focal length is the random scale.
"""

from __future__ import annotations

import cv2
import numpy as np

MEAN_RGB = (124, 116, 104)  # ImageNet mean in 0..255
CAMERA_AUGMENTS = ("shift", "exposure", "blur", "jpeg")


def parse_augments(text: str) -> tuple[str, ...]:
    """``"shift,jpeg"`` -> ("shift", "jpeg"); "" or "none" -> (); an unknown name is a ValueError."""
    names = tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")
    unknown = [n for n in names if n not in CAMERA_AUGMENTS]
    if unknown:
        raise ValueError(f"--augment {text!r}: unknown {', '.join(unknown)} (choose from {', '.join(CAMERA_AUGMENTS)})")
    return names


def resize_pair(image: np.ndarray, label: np.ndarray, size_hw) -> tuple[np.ndarray, np.ndarray]:
    h, w = size_hw
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


def shift_pair(image: np.ndarray, label: np.ndarray, dy: int, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Move the picture down by dy rows (negative: up), same size; uncovered rows: mean colour, ignored."""
    h = label.shape[0]
    top, bottom = max(dy, 0), max(-dy, 0)
    image = cv2.copyMakeBorder(image, top, bottom, 0, 0, cv2.BORDER_CONSTANT, value=MEAN_RGB)
    label = cv2.copyMakeBorder(label, top, bottom, 0, 0, cv2.BORDER_CONSTANT, value=ignore_index)
    return image[bottom:bottom + h], label[bottom:bottom + h]


def apply_gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """Exposure: every uint8 value v -> 255 (v / 255) ** gamma."""
    return (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)[image]


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Return the RGB image encoded as JPEG at quality and decoded: a compressed stream's artefacts."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


class TrainAugment:
    def __init__(self, crop=(360, 480), scale=(0.5, 2.0), flip: bool = True, jitter: float = 0.25,
                 ignore_index: int = 255, base_size=None, base_width: int | None = None,
                 camera: tuple[str, ...] = ()):
        self.crop = tuple(crop)
        self.scale = tuple(scale)
        self.flip = flip
        self.jitter = jitter
        self.ignore_index = ignore_index
        self.base_size = base_size  # (H, W) every image is brought to before scaling
        # ... or the width, aspect kept: sources of different resolutions at the scale
        # the deployed model (input_width) sees them.
        self.base_width = base_width
        self.camera = tuple(camera)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator):
        if self.base_size:
            image, label = resize_pair(image, label, self.base_size)
        elif self.base_width and self.base_width != label.shape[1]:
            h, w = label.shape
            image, label = resize_pair(image, label, (max(8, round(h * self.base_width / w)), self.base_width))
        s = rng.uniform(*self.scale)
        h, w = label.shape
        image, label = resize_pair(image, label, (max(8, round(h * s)), max(8, round(w * s))))
        if "shift" in self.camera:
            image, label = self._shift(image, label, rng)
        image, label = self._crop(image, label, rng)
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        if self.jitter:
            image = self._photometric(image, rng)
        image = self._camera(np.ascontiguousarray(image), rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def _shift(self, image, label, rng, most: float = 0.2):
        """Move the frame up or down by up to ``most`` of its height (the horizon moves with it)."""
        return shift_pair(image, label, int(round(rng.uniform(-most, most) * label.shape[0])), self.ignore_index)

    def _camera(self, image, rng):
        """Exposure, blur and JPEG, each on about a third to a half of the samples."""
        if "exposure" in self.camera and rng.random() < 0.5:
            image = apply_gamma(image, float(np.exp(rng.uniform(-0.5, 0.5))))
        if "blur" in self.camera and rng.random() < 0.3:
            sigma = rng.uniform(0.4, 1.5)
            if rng.random() < 0.5:  # defocus
                image = cv2.GaussianBlur(image, (0, 0), sigma)
            else:  # horizontal motion (the car moving past what it sees)
                k = max(3, 2 * int(round(2 * sigma)) + 1)
                image = cv2.filter2D(image, -1, np.full((1, k), 1.0 / k, np.float32))
        if "jpeg" in self.camera and rng.random() < 0.4:
            image = jpeg_roundtrip(image, int(rng.integers(20, 91)))
        return image

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
