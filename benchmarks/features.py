"""A frozen pretrained backbone's pooled features in place of the pixels: the linear probe's inputs.

Used by the grids whose config names a ``features`` backbone (`benchmarks/finetune_noise.py`'s linear probe,
`benchmarks/mlc_benchmark.py`'s EfficientNet probe): `feature_cache` gives the process's one cache per backbone
and file, `to_features` swaps a seed's splits' ``pixel_values`` for the cached features.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import TensorRows, build_model

_CACHES: dict[tuple[str, str, str | None], FeatureCache] = {}


def feature_cache(spec: dict[str, Any], device: str, *, path: Path | None = None) -> FeatureCache:
    """This process's `FeatureCache` of the backbone ``spec`` on ``device`` (kept in ``path``), made once."""
    key = (json.dumps(spec, sort_keys=True), device, None if path is None else str(path))
    if key not in _CACHES:
        _CACHES[key] = FeatureCache(spec, device, path=path)
    return _CACHES[key]


class FeatureCache:
    """Pooled pretrained features (the linear probe's inputs), computed once per distinct image.

    Keyed by the image tensor's bytes, so every seed's split reuses the features of seed 0's; optionally
    persisted to ``path`` (``.pt``) so a resumed grid computes none.
    """

    def __init__(self, model_spec: dict[str, Any], device: str, *, path: Path | None = None, batch_size: int = 256):
        self.model_spec, self.device, self.path, self.batch_size = model_spec, device, path, batch_size
        self.store: dict[str, torch.Tensor] = torch.load(path) if path and path.exists() else {}
        self._model = None
        self.seconds = 0.0

    def backbone(self):
        if self._model is None:
            model = build_model(self.model_spec, num_labels=2, in_channels=3, image_size=0)
            self._model = getattr(model, "timm_model", model).to(self.device).eval()
        return self._model

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in pixels]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self.store}.items(), key=lambda kv: kv[1])
        if missing:
            start = time.perf_counter()
            model = self.backbone()
            index = [i for _, i in missing]
            for j in range(0, len(index), self.batch_size):
                chunk = pixels[index[j : j + self.batch_size]].to(self.device)
                feats = model.forward_head(model.forward_features(chunk), pre_logits=True).float().cpu()
                for i, f in zip(index[j : j + self.batch_size], feats):
                    self.store[keys[i]] = f.clone()
            self.seconds += time.perf_counter() - start
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(self.store, self.path)
        return torch.stack([self.store[k] for k in keys])


def to_features(base: dict[str, Any], cache: FeatureCache) -> dict[str, Any]:
    """The seed's splits with ``pixel_values`` replaced by the backbone's pooled features (a vector per row)."""
    out = dict(base)
    for name in ("train", "meta"):
        ds = base[name]
        feats = cache(ds.with_format("torch", columns=["pixel_values"])[:]["pixel_values"])
        ds = ds.remove_columns(["pixel_values"]).add_column("pixel_values", feats.numpy().tolist())
        out[name] = ds.with_format("torch")
    test = base["test"]
    out["test"] = TensorRows({"pixel_values": cache(test.columns["pixel_values"]), "label": test.columns["label"]})
    out.update(in_channels=int(feats.shape[1]), image_size=1)
    return out


