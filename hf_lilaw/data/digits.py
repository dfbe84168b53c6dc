"""scikit-learn's bundled 8×8 handwritten digits as an image data set (offline)."""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

from .registry import register_dataset
from .splits import finish_splits


@register_dataset("digits")
def load_digits_images(
    *,
    size: int | None = None,
    rgb: bool = False,
    test_fraction: float = 0.2,
    meta_fraction: float = 0.15,
    seed: int = 0,
) -> DatasetDict:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes) as an ``image`` column.

    The set has no official test split: a seeded, stratified ``test_fraction`` is carved first.

    Args:
        size: Upscales the images (bilinear) to ``size``×``size``; the 8×8 originals when None.
        rgb: Stores 3-channel images (the grey value repeated) instead of mode ``"L"``.
    """
    from PIL import Image as PILImage
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = [PILImage.fromarray(p, mode="L") for p in pixels]
    if size is not None:
        images = [im.resize((size, size), PILImage.Resampling.BILINEAR) for im in images]
    if rgb:
        images = [im.convert("RGB") for im in images]
    features = Features({"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)])})
    train = Dataset.from_dict({"image": images, "label": bunch.target.tolist()}, features=features)
    return finish_splits(DatasetDict(train=train), meta_fraction=meta_fraction, seed=seed, test_fraction=test_fraction)
