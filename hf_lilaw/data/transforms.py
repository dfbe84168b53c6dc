"""Batch transforms (`Dataset.set_transform`) that turn the loaders' columns into model inputs."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..core.columns import BOOKKEEPING_COLUMNS

PASSTHROUGH_COLUMNS: tuple[str, ...] = BOOKKEEPING_COLUMNS
"""Columns the transforms below copy through unchanged when a dataset has them."""


def _passthrough(batch: Mapping[str, list], keep: Sequence[str]) -> dict[str, list]:
    return {c: batch[c] for c in keep if c in batch}


def _processor_size(processor: Any) -> tuple[int, int] | int:
    """Training crop size of an image processor: ``crop_size`` if it crops, else ``size``."""
    for attr in ("crop_size", "size"):
        size = getattr(processor, attr, None)
        if size is None or (attr == "crop_size" and not getattr(processor, "do_center_crop", False)):
            continue
        get = size.get if isinstance(size, Mapping) else lambda key, s=size: getattr(s, key, None)
        if get("height") and get("width"):
            return (int(get("height")), int(get("width")))
        if get("shortest_edge"):
            return int(get("shortest_edge"))
    raise ValueError(f"Cannot read an input size from {type(processor).__name__}; pass a processor with size=....")


def image_transforms(
    model_or_processor: Any,
    *,
    train: bool,
    image_column: str = "image",
    label_column: str = "label",
    keep_columns: Sequence[str] = PASSTHROUGH_COLUMNS,
) -> Callable[[dict[str, list]], dict[str, list]]:
    """Builds a batch transform for `Dataset.set_transform` that yields ``pixel_values`` and ``labels``.

    The preprocessing is the model's own: a transformers image processor (an instance, or a name/path for
    `AutoImageProcessor.from_pretrained`), or, for a timm model (also inside a transformers
    ``TimmWrapper`` model, or the name/path of its checkpoint), timm's data config (`resolve_data_config` +
    `create_transform`) from the checkpoint's ``config.pretrained_cfg`` over the timm module's. Evaluation
    uses the processor itself (timm: its eval transform); training adds the augmentation of the transformers
    image-classification example (random resized crop to the processor's size + horizontal flip) and then runs
    the processor with its resizing and cropping off, so rescaling, normalisation and any model-specific step
    match evaluation (timm: its training transform). Grey images are converted to RGB when the model expects
    three channels; transparent pixels are put over white (as transformers' processors do), 16-bit images (PIL
    ``I;16*``) are scaled to 8 bits first, and 32-bit modes ``I`` and ``F`` (range unknown) raise a ValueError.
    ``keep_columns`` present in the batch are passed through (``sample_id``, ``is_noisy``, ``clean_label`` by
    default). It reads the raw ``image_column``, which the model's forward does not take: train with
    ``remove_unused_columns=False`` in the `TrainingArguments`, or Trainer removes the column before the transform
    runs.

    Args:
        model_or_processor: An image processor, a Hub name or local path (of a processor or a timm
            checkpoint), a timm model, or a transformers model wrapping a timm model or saved with its processor.
        train: Training (augmented) or evaluation transform.
    """
    processor, timm_cfg = _resolve_preprocessing(model_or_processor)
    if timm_cfg is not None:
        from timm.data import create_transform, resolve_data_config

        config = resolve_data_config(pretrained_cfg=timm_cfg)
        tv_transform = create_transform(**config, is_training=train)
        channels = config["input_size"][0]
        process = lambda images: [tv_transform(im) for im in images]  # noqa: E731
    else:
        mean = getattr(processor, "image_mean", None)
        channels = len(mean) if mean is not None and not np.isscalar(mean) else 3
        if train:
            from torchvision import transforms as T

            # Only the geometry is augmented here; the processor itself then rescales, normalises and applies any
            # model-specific step (channel flip, ...), so training sees what evaluation sees.
            augment = T.Compose([T.RandomResizedCrop(_processor_size(processor)), T.RandomHorizontalFlip()])
            no_geometry = {k: False for k in ("do_resize", "do_center_crop") if hasattr(processor, k)}

            def process(images: list) -> list:
                augmented = [augment(im) for im in images]
                return list(processor(augmented, return_tensors="pt", **no_geometry)["pixel_values"])
        else:
            process = lambda images: list(processor(images, return_tensors="pt")["pixel_values"])  # noqa: E731
    mode = "RGB" if channels == 3 else "L"

    def transform(batch: dict[str, list]) -> dict[str, list]:
        images = [_to_mode(im, mode, image_column) for im in _column(batch, image_column, "image_column")]
        labels = _column(batch, label_column, "label_column")
        return {"pixel_values": process(images), "labels": labels, **_passthrough(batch, keep_columns)}

    return transform


class MissingColumnError(KeyError):
    """A column the transform reads is not in the batch: a `KeyError` of that column (as a plain lookup raises,
    which the trainers' pre-flight explains), with a message that says what to pass."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(column)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _column(batch: dict[str, list], name: str, argument: str) -> list:
    if name not in batch:
        raise MissingColumnError(
            name,
            f"The batch has no column {name!r} (it has {sorted(batch)}): pass the transform {argument}=<one of them>, "
            "and train with remove_unused_columns=False, or Trainer drops the raw columns before the transform runs.",
        )
    return batch[name]


def _image_column_recipe(column: str) -> str:
    # datasets' own Image() cast turns grey integer lists into 32-bit mode "I": PIL builds them from uint8 instead
    return (
        f"features = dataset.features.copy(); features[{column!r}] = datasets.Image(); dataset = dataset.map(lambda "
        f"row: {{{column!r}: PIL.Image.fromarray(np.asarray(row[{column!r}], np.uint8))}}, features=features)"
    )


def _to_mode(image: Any, mode: str, column: str = "image") -> Any:
    """``image`` in PIL ``mode``; 16-bit images are scaled to 8 bits first (PIL's own conversion clips at 255), and
    transparent pixels (an alpha band, or a palette's or grey PNG's transparent colour) are put over white."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise TypeError(
            f"The image_column {column!r} holds {type(image).__name__} values, not images: make it a datasets Image "
            f"column first, e.g. for 8-bit pixel arrays (H, W) or (H, W, C): {_image_column_recipe(column)}; for file "
            f"paths: dataset = dataset.cast_column({column!r}, datasets.Image())."
        )
    if image.mode.startswith("I;16"):
        image = Image.fromarray(np.rint(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8))  # mode L
    elif image.mode in ("I", "F"):
        raise ValueError(
            f"Image mode {image.mode!r} (32-bit {'integer' if image.mode == 'I' else 'float'}) has no known pixel "
            "range, so it cannot be scaled to 8 bits for the model; convert the images to uint8 (mode 'L' or 'RGB') "
            "or uint16 (mode 'I;16') first. datasets' Image() cast makes mode 'I' of grey pixel lists even when they "
            f"are 8-bit; build those images from uint8 instead: {_image_column_recipe(column)}."
        )
    elif "A" in image.getbands() or image.info.get("transparency") is not None:
        # as transformers' convert_to_rgb does, so training sees what the saved processor gives at inference; PIL's
        # own conversion drops the alpha band, leaving whatever colour the transparent pixels hold (mostly black)
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image.convert("RGBA"))
    return image if image.mode == mode else image.convert(mode)


def _timm_pretrained_cfg(config: Any, timm_model: Any) -> dict[str, Any]:
    """The checkpoint's ``config.pretrained_cfg`` over the timm module's own.

    A transformers ``TimmWrapper`` builds its timm module from the architecture name only, so the module's
    ``pretrained_cfg`` is timm's default tag for it; the checkpoint's config holds that of the weights loaded.
    """
    checkpoint_cfg = getattr(config, "pretrained_cfg", None)
    cfg = {**dict(timm_model.pretrained_cfg or {}), **dict(checkpoint_cfg or {})}
    return _match_input_channels(cfg, _input_channels(timm_model, cfg.get("first_conv")))


def _input_channels(timm_model: Any, first_conv: str | None) -> int | None:
    """Channels the timm module's first convolution takes (``None`` when it has none)."""
    if first_conv:
        try:
            return int(timm_model.get_submodule(first_conv).in_channels)
        except AttributeError:  # a name this module does not have: look for the first convolution instead
            pass
    channels = (m.in_channels for m in timm_model.modules() if isinstance(getattr(m, "in_channels", None), int))
    return next(channels, None)


def _match_input_channels(cfg: dict[str, Any], channels: int | None) -> dict[str, Any]:
    """``cfg`` with ``input_size``, ``mean`` and ``std`` for a module taking ``channels`` channels.

    A timm model built with ``in_chans=1`` keeps its architecture's RGB ``pretrained_cfg``, from which timm's transform
    makes three channels the model refuses; it gets grey images, normalised with the mean of the three means and of
    the three stds (the RGB normalisation of a grey image when they are equal, as timm's 0.5s).
    """
    size = cfg.get("input_size")
    if channels is None or size is None or channels == size[0]:
        return cfg
    if channels not in (1, 3):
        raise ValueError(
            f"The timm model takes {channels} input channels, but image_transforms makes grey (1) or RGB (3) images; "
            "build the model with in_chans=1 or 3, or write a transform that makes its channels."
        )
    cfg = {**cfg, "input_size": (channels, *size[1:])}
    for key in ("mean", "std"):
        if channels == 1 and cfg.get(key) is not None and not np.isscalar(cfg[key]):
            cfg[key] = (float(np.mean(cfg[key])),)
    return cfg


def _resolve_preprocessing(obj: Any) -> tuple[Any, dict[str, Any] | None]:
    """Returns ``(image_processor, None)`` or, for timm models and checkpoints, ``(None, pretrained_cfg)``."""
    import torch

    if isinstance(obj, (str, os.PathLike)):
        from transformers import AutoConfig, AutoImageProcessor, TimmWrapperImageProcessor

        processor = AutoImageProcessor.from_pretrained(obj)
        if not isinstance(processor, TimmWrapperImageProcessor):
            return processor, None
        # timm's processor reads config.json's pretrained_cfg alone and has no size for the training crop: take the
        # config of the model that from_pretrained would build instead, whose timm module fills in missing keys.
        config = AutoConfig.from_pretrained(obj)
        return None, _timm_pretrained_cfg(config, _timm_module(config))
    if isinstance(obj, torch.nn.Module):
        inner = getattr(obj, "timm_model", obj)
        if hasattr(inner, "pretrained_cfg"):
            return None, _timm_pretrained_cfg(getattr(obj, "config", None), inner)
        name = getattr(getattr(obj, "config", None), "name_or_path", "")
        if name:
            return _resolve_preprocessing(name)
        raise ValueError(
            f"{type(obj).__name__} carries no image processor; pass its processor instead, "
            "e.g. image_transforms(ViTImageProcessor(size=...), train=...)."
        )
    if callable(obj) and hasattr(obj, "image_mean"):
        return obj, None
    raise TypeError(f"Expected an image processor, a model or a name, got {type(obj).__name__}.")


def _timm_module(config: Any) -> Any:
    """The timm module a ``TimmWrapper`` model builds from ``config``, without weights (only its config is read)."""
    import timm
    import torch

    build = lambda: timm.create_model(config.architecture, pretrained=False, **(config.model_args or {}))  # noqa: E731
    try:
        with torch.device("meta"):
            return build()
    except (RuntimeError, NotImplementedError):  # a model that computes with its tensors while being built
        return build()


def vector_transform(
    *,
    input_column: str = "series",
    label_column: str = "label",
    keep_columns: Sequence[str] = PASSTHROUGH_COLUMNS,
) -> Callable[[dict[str, list]], dict[str, Any]]:
    """Batch transform for series (``series``) or encoded tabular rows (``features``) → ``input_values``.

    Use with `Dataset.set_transform`; the Trainer's default collator stacks the float tensors into
    ``(batch, length)`` for `StackedLSTMForTimeSeriesClassification` or ``(batch, features)`` for
    `MLPForTabularClassification`. All rows of one data set must have the same length. It reads the raw
    ``input_column``, which the model's forward does not take: train with ``remove_unused_columns=False`` in the
    `TrainingArguments`, or Trainer removes the column before the transform runs.
    """
    import torch

    def transform(batch: dict[str, list]) -> dict[str, Any]:
        values = [torch.as_tensor(np.asarray(v, dtype=np.float32)) for v in _column(batch, input_column, "input_column")]
        labels = _column(batch, label_column, "label_column")
        return {"input_values": values, "labels": labels, **_passthrough(batch, keep_columns)}

    return transform
