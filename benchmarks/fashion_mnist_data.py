"""Fashion-MNIST data shared by the Fashion-MNIST benchmarks (`fashion_mnist.py`, `fashion_mnist_detection.py`):
the condition names, the seed's noisy labels and validation split, and the frozen EfficientNet-Lite0 features of
the linear probe (computed once, cached).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

PROBE_ARCHITECTURE = "tf_efficientnet_lite0"  # the network hf_lilaw.models.efficientnet_lite0_checkpoint holds


NOISE_KINDS = ("uniform", "pair_flip", "rule_map")
"""The label-noise types a condition names; ``pair_flip`` and ``rule_map`` use hf_lilaw's ``fashion_mnist`` rules
(pair flip: every class to its look-alike partner; rule map: the class-conditional map of look-alikes, which leaves
Trouser and Bag alone, so 40 % realises about 32 %)."""


def parse_condition(name: str) -> tuple[str | None, float]:
    """``"clean"`` -> ``(None, 0.0)``, ``"uniform_40"`` -> ``("uniform", 0.4)``; ``"pair_flip_40"`` and
    ``"rule_map_40"`` likewise."""
    if name == "clean":
        return None, 0.0
    kind, _, percent = name.rpartition("_")
    if kind not in NOISE_KINDS or not percent.isdigit() or not 0 < int(percent) < 100:
        raise ValueError(f"Unknown condition {name!r}: use clean or {', '.join(k + '_<percent>' for k in NOISE_KINDS)}, "
                         "e.g. uniform_40.")  # fmt: skip
    return kind, int(percent) / 100


def noisy_split(seed: int, condition: str, labels: np.ndarray, *, val_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(training rows, validation rows, labels)`` of a seed: the condition's noise drawn over all ``labels``
    (``hf_lilaw.noise.noisy_labels``; pair flips and rule maps with the ``fashion_mnist`` rules) and a seeded permutation whose
    first ``val_rows`` rows are the validation split. Both depend on the seed only, so methods pair."""
    from hf_lilaw.noise import noisy_labels

    kind, rate = parse_condition(condition)
    if val_rows < 10 or val_rows >= len(labels):
        raise ValueError(f"val_rows must be in [10, {len(labels)}), got {val_rows}.")
    noisy = labels if kind is None else noisy_labels(labels, noise_type=kind, rate=rate, seed=seed, num_classes=10,
                                                     rules="fashion_mnist" if kind in ("pair_flip", "rule_map") else None)  # fmt: skip
    order = np.random.default_rng(seed).permutation(len(labels))
    return order[val_rows:], order[:val_rows], np.asarray(noisy, dtype=np.int64)


def feature_cache_path(image_size: int) -> Path:
    """Where the probe's features are kept: ``$HF_LILAW_FEATURE_CACHE``, else ``~/.cache/hf_lilaw/features``."""
    root = os.environ.get("HF_LILAW_FEATURE_CACHE") or Path.home() / ".cache" / "hf_lilaw" / "features"
    return Path(root) / f"fashion_mnist_{PROBE_ARCHITECTURE}_{image_size}px.npz"


def pretrained_pixels(images: Any, *, image_size: int) -> Any:
    """The pretrained EfficientNet-Lite0's input for 28-px uint8 images ``(N, 28, 28)`` (an array, or a tensor on
    any device): scaled to [0, 1], resized bilinearly to ``image_size`` px, repeated over 3 channels and normalised
    with the checkpoint's mean = std = 0.5; a float32 tensor ``(N, 3, image_size, image_size)`` on the images'
    device. The probe's features and the fine-tuning runs (a batch at a time) both use it."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.array(images, dtype=np.float32)) if isinstance(images, np.ndarray) else images.float()
    x = x.div(255.0).unsqueeze(1)  # not in place: a float tensor passed in is the caller's
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.sub_(0.5).div_(0.5).expand(-1, 3, -1, -1).contiguous()


def probe_features(x_train: np.ndarray, x_test: np.ndarray, *, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The pooled 1,280-d features of the ImageNet EfficientNet-Lite0 (hf_lilaw's offline checkpoint) for every
    image, computed once and cached (float16 on disk); returned standardised with the training images' mean and
    standard deviation (no labels involved).

    An image is scaled to [0, 1], resized bilinearly to ``image_size`` px, repeated over 3 channels and normalised
    with the checkpoint's mean = std = 0.5.
    """
    path = feature_cache_path(image_size)
    if not path.is_file():
        import timm
        import torch
        from safetensors.torch import load_file

        from hf_lilaw.models import efficientnet_lite0_checkpoint

        backbone = timm.create_model(PROBE_ARCHITECTURE, num_classes=0)
        weights = load_file(str(Path(efficientnet_lite0_checkpoint()) / "model.safetensors"))
        backbone.load_state_dict({k: v for k, v in weights.items() if not k.startswith("classifier.")})
        backbone = backbone.eval().to(memory_format=torch.channels_last)  # about 2x faster on a CPU
        start = time.perf_counter()

        @torch.inference_mode()
        def features(x: np.ndarray) -> np.ndarray:
            out = []
            for chunk in np.array_split(x, max(1, len(x) // 256)):
                images = pretrained_pixels(chunk, image_size=image_size).contiguous(memory_format=torch.channels_last)
                out.append(backbone(images).numpy())
            return np.concatenate(out)

        train, test = features(x_train), features(x_test)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.npz")
        np.savez(partial, train=train.astype(np.float16), test=test.astype(np.float16))
        partial.replace(path)  # whole or absent: a killed computation leaves no cache behind
        print(f"probe features ({image_size} px) computed in {time.perf_counter() - start:.0f} s -> {path}", flush=True)
    with np.load(path) as cached:
        train, test = cached["train"].astype(np.float32), cached["test"].astype(np.float32)
    if train.shape != (len(x_train), 1280) or test.shape != (len(x_test), 1280):
        raise ValueError(f"{path} holds features of other images ({train.shape}, {test.shape}): delete it.")
    mean, std = train.mean(0), train.std(0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def recorded_rows(x: np.ndarray, y: np.ndarray) -> Any:
    """A `datasets.Dataset` of ``sample_id`` and ``label`` whose transform gathers the inputs from memory: what a
    `TrainingDynamicsRecorder` needs (stable sample ids), without writing 55,000 x 1,280 floats to Arrow."""
    import datasets
    import torch

    inputs = torch.from_numpy(x)
    rows = datasets.Dataset.from_dict({"sample_id": np.arange(len(y)), "label": y})

    def gather(batch: dict[str, list]) -> dict[str, Any]:
        ids = torch.as_tensor(batch["sample_id"])
        return {"pixel_values": inputs[ids], "label": batch["label"], "sample_id": ids}

    rows.set_transform(gather)
    return rows
