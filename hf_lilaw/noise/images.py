"""Input noise for images, computed on float (H, W, C) arrays in [0, 1]: covariate, domain shift (cartoon),
far OOD, zoom shift and crop shift."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image as PILImage
from scipy import ndimage


def _resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float HWC image, channel by channel through PIL's float mode."""
    resized = []
    for c in range(x.shape[-1]):
        channel = PILImage.fromarray(np.ascontiguousarray(x[..., c], dtype=np.float32))  # mode "F"
        resized.append(np.asarray(channel.resize((width, height), PILImage.Resampling.BILINEAR)))
    return np.stack(resized, axis=-1)


def _covariate(x: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(x + rng.standard_normal(x.shape) * (sigma * x.max()), 0.0, 1.0)


def _bilateral(img: np.ndarray, diameter: int, sigma_color: float, sigma_space: float) -> np.ndarray:
    """Bilateral filter over a disc of ``diameter`` pixels, reflected border (OpenCV's defaults).

    Neither SciPy nor PIL has one, and OpenCV or scikit-image are not dependencies; the loop runs over the
    disc's offsets, each step vectorised over the whole image.
    """
    radius = diameter // 2
    padded = np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    height, width = img.shape[:2]
    total = np.zeros_like(img)
    weights = np.zeros(img.shape[:2])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            neighbour = padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width]
            colour_distance = np.abs(neighbour - img).sum(axis=-1)
            w = np.exp(-(dy * dy + dx * dx) / (2 * sigma_space**2) - colour_distance**2 / (2 * sigma_color**2))
            total += w[..., None] * neighbour
            weights += w
    return total / weights[..., None]


def _cartoon(x: np.ndarray) -> np.ndarray:
    """H-CAT's OpenCV cartoon effect without OpenCV: median blur 5, adaptive mean threshold (block 9, C 9)
    as an edge mask, bilateral filter (9, 250, 250) on the colours, masked; replicated borders like OpenCV."""
    img = x * 255.0
    gray = img[..., 0] if img.shape[-1] == 1 else img[..., :3] @ np.array([0.299, 0.587, 0.114])
    gray = ndimage.median_filter(np.rint(gray), size=5, mode="nearest")
    # gray > mean - C, compared on exact window sums of integers: a rounded mean would break ties at random
    window_sum = ndimage.correlate(gray, np.ones((9, 9)), mode="nearest")
    edges = 81 * gray > window_sum - 81 * 9
    return _bilateral(img, 9, 250.0, 250.0) * edges[..., None] / 255.0


def _over_white(x: np.ndarray) -> np.ndarray:
    """The colour bands of float image ``x`` (last band alpha) put over white, as the image is shown."""
    return x[..., :-1] * x[..., -1:] + (1.0 - x[..., -1:])


def _match_image(item: Any, height: int, width: int, channels: int) -> np.ndarray:
    """A pool image as a float (height, width, channels) image, transparent pixels put over white as
    `image_transforms` (and transformers' processors) show them."""
    if isinstance(item, PILImage.Image):
        x, _ = _to_unit_hwc(pil_pixels(item), check_range=False, channels_last=True, what="A pool image")
    else:
        x, _ = _to_unit_hwc(np.asarray(item), check_range=False, what="A pool image")
    if x.shape[-1] in (2, 4):
        # dropping the alpha band alone left the colour transparent pixels store, mostly black
        x = _over_white(x)
    if x.shape[-1] != channels:
        x = x.mean(axis=-1, keepdims=True) if channels == 1 else np.repeat(x[..., :1], channels, axis=-1)
    return np.clip(_resize(x, height, width), 0.0, 1.0)


# PIL modes kept as decoded; other 8-bit modes (P, CMYK, 1, ...) are converted to RGB, or RGBA when transparent.
_KEPT_MODES = ("L", "LA", "RGB", "RGBA")
# 16-bit grey modes and their NumPy dtypes: noised on the 0..65535 scale and written back in the same mode.
_UINT16_MODES = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}


def check_image_mode(mode: str | None, what: str = "An image") -> None:
    """Raises for PIL modes of unknown pixel range (32-bit "I" and "F"), which cannot be scaled to [0, 1]."""
    if mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "32-bit float"
        raise ValueError(
            f"{what} has PIL mode {mode!r} ({kind}), whose pixel range is unknown, so input noise cannot scale it "
            "to [0, 1]. Rescale the pixels to uint8 (mode 'L' or 'RGB') or uint16 (mode 'I;16') first, or store "
            "them as a float array in [0, 1]."
        )


def pil_pixels(image: PILImage.Image) -> np.ndarray:
    """The pixel array to noise: uint16 for 16-bit modes; 8-bit modes other than L, LA, RGB, RGBA as RGB, or as
    LA (grey) / RGBA when they have transparency (an alpha band, or a palette's or PNG's transparent colour)."""
    check_image_mode(image.mode)
    if image.mode in _UINT16_MODES:
        return np.asarray(image).astype(np.uint16)
    alpha_band = "A" in image.getbands() and image.mode != "LAB"  # LAB's band A is the a* colour axis, not alpha
    if image.mode not in ("LA", "RGBA") and (alpha_band or image.info.get("transparency") is not None):
        # an RGB or L conversion drops the transparency, leaving the colour the transparent pixels hold (mostly
        # black) where `image_transforms` shows the rows not hit white; RGBA to LA is PIL's oldest grey-alpha path
        rgba = image.convert("RGBA")
        return np.asarray(rgba.convert("LA") if image.mode == "L" else rgba)
    return np.asarray(image if image.mode in _KEPT_MODES else image.convert("RGB"))


def noisy_pil_image(image: PILImage.Image, fn: Callable, rng: np.random.Generator) -> PILImage.Image:
    """`noisy_image` of a PIL image, in its own mode (8-bit modes other than L, LA, RGB, RGBA become RGB, or LA /
    RGBA when transparent)."""
    out = noisy_image(pil_pixels(image), fn, rng, channels_last=True)
    return PILImage.fromarray(out.astype(_UINT16_MODES[image.mode]) if image.mode in _UINT16_MODES else out)


def _to_unit_hwc(
    a: np.ndarray, *, check_range: bool = True, channels_last: bool = False, what: str = "An image"
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Float HWC image in [0, 1] and the inverse mapping back to `a`'s layout and dtype.

    `channels_last` says that a 3-D `a` is (H, W, C), as PIL pixels are; otherwise the layout is read from the
    shape, and a shape whose first and last axes could both be channels is refused.
    """
    layout = "hw" if a.ndim == 2 else None
    if a.ndim == 3:
        last, first = a.shape[-1] in (1, 2, 3, 4), a.shape[0] in (1, 3, 4)
        if channels_last or (last and not first):
            layout = "hwc"
        elif first and not last:
            layout = "chw"
        elif first and last:
            raise ValueError(
                f"{what} has shape {a.shape}, which reads as (C, H, W) and as (H, W, C): its first and last axes "
                "could both be channels. Store such small images in a datasets Image column (always H, W, C), or "
                "as arrays whose height and width exceed 4."
            )
    if layout is None:
        raise ValueError(f"Expected an image of shape (H, W), (H, W, C) or (C, H, W), got {a.shape}.")
    dtype = a.dtype
    if np.issubdtype(dtype, np.integer):
        is_uint16 = dtype.kind == "u" and dtype.itemsize == 2  # either byte order
        scale = 65535.0 if is_uint16 else 255.0
        # Only uint16 says that pixels go up to 65535; other integers (int64 from Python ints, int32) must be 8-bit.
        if not is_uint16 and a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(
                f"{what} has {dtype} pixels in [{a.min()}, {a.max()}], outside [0, 255], the range of integer "
                "images other than uint16. Cast the column to uint8 (0..255) or uint16 (0..65535), e.g. "
                "dataset.cast_column(<column>, List(List(Value('uint16')))), or store floats in [0, 1]."
            )
    elif np.issubdtype(dtype, np.floating):
        scale = 1.0
        if a.size and not np.isfinite(a).all():
            raise ValueError(
                f"{what} has NaN or infinite pixels: the noise would spread them over the whole image (the scale "
                "is the image's maximum). Repair or drop those rows first, e.g. dataset.filter(...)."
            )
        if check_range and a.size and (a.min() < 0 or a.max() > 1):
            raise ValueError(
                f"Float images must be in [0, 1]; {what} has values in [{a.min():.3g}, {a.max():.3g}]: add input "
                "noise before normalisation, or store uint8 pixels."
            )
    else:
        raise ValueError(f"Unsupported image dtype {dtype}; use uint8, uint16 or float in [0, 1].")
    x = a.astype(np.float32) / scale
    x = x[..., None] if layout == "hw" else np.moveaxis(x, 0, -1) if layout == "chw" else x

    def back(y: np.ndarray) -> np.ndarray:
        y = y[..., 0] if layout == "hw" else np.moveaxis(y, -1, 0) if layout == "chw" else y
        return np.rint(y * scale).astype(dtype) if scale != 1.0 else y.astype(dtype)

    return x, back


def image_noise_fn(
    noise_type: str, sigma: float, zoom_factor: float, shift_fraction: float, pool: Any
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The function ``(x, rng) -> noisy x`` of one image noise type; a last band of 2 or 4 is alpha.

    ``pool`` (far OOD only) has ``len()`` and ``get(i)`` returning a replacement; None for the random fallback.
    """

    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width, channels = x.shape
        has_alpha = channels in (2, 4)
        if noise_type == "zoom_shift":  # an alpha band is zoomed with the colours
            crop_h, crop_w = max(1, int(height / zoom_factor)), max(1, int(width / zoom_factor))
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            crop = x[top : top + crop_h, left : left + crop_w]
            if not has_alpha:
                return _resize(crop, height, width)
            # premultiplied, or the colour transparent pixels store (mostly black) bleeds into the object's edge
            zoomed = _resize(np.concatenate([crop[..., :-1] * crop[..., -1:], crop[..., -1:]], axis=-1), height, width)
            alpha = zoomed[..., -1:]
            colour = np.divide(zoomed[..., :-1], alpha, out=np.zeros_like(zoomed[..., :-1]), where=alpha > 0)
            return np.concatenate([colour, alpha], axis=-1)
        if noise_type == "crop_shift":
            # whole-pixel shift along the width, zero fill; an alpha band moves too, opaque in the columns shifted
            # in, so that they show black as without alpha
            shift = int(round(shift_fraction * width))
            out = ndimage.shift(x, (0, shift, 0), order=0, mode="constant", cval=0.0)
            if has_alpha:
                out[..., -1] = ndimage.shift(x[..., -1], (0, shift), order=0, mode="constant", cval=1.0)
            return out
        if has_alpha:
            colour, alpha = x[..., :-1], x[..., -1:]
            if noise_type == "far_ood":  # opaque: the row's own alpha would cut it to the row's shape, i.e. its class
                return np.concatenate([apply(colour, rng), np.ones_like(alpha)], axis=-1)
            # the noise of the image as shown, over white, put back under the same alpha: the colours transparent
            # pixels store, never seen, set the noise scale and the cartoon's edges otherwise
            shown = apply(_over_white(x), rng)
            colour = np.divide(shown - (1.0 - alpha), alpha, out=colour.copy(), where=alpha > 0)
            return np.concatenate([np.clip(colour, 0.0, 1.0), alpha], axis=-1)
        if noise_type == "ood_covariate":
            return _covariate(x, rng, sigma)
        if noise_type == "domain_shift":
            return _cartoon(_covariate(x, rng, sigma))
        if pool is None:  # far_ood
            return rng.random(x.shape, dtype=np.float32)
        return _match_image(pool.get(int(rng.integers(len(pool)))), height, width, channels)

    return apply


def noisy_image(
    a: np.ndarray, fn: Callable, rng: np.random.Generator, *, channels_last: bool = False, what: str = "An image"
) -> np.ndarray:
    """``fn`` applied to image array ``a`` in [0, 1], written back in ``a``'s layout and dtype.

    ``channels_last``: a 3-D ``a`` is (H, W, C) (PIL pixels); ``what`` names the image in errors.
    """
    x, back = _to_unit_hwc(a, channels_last=channels_last, what=what)
    return back(np.clip(fn(x, rng), 0.0, 1.0))
