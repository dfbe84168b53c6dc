"""The switches that change how LiLAW's step runs (tensor-cached meta set, compiled step math) change nothing but the
time: bit for bit, or to float32 rounding where fused kernels round differently."""

import pytest
import torch

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.core.tensor_cache import TensorBatchCache

from conftest import TinyNet


def _run(tmp_path, train, meta, **overrides):
    torch.manual_seed(0)
    model = TinyNet(dropout=0.2)  # dropout: the global RNG must advance exactly as in the general path
    args = LiLAWConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=14, learning_rate=0.05, logging_steps=5,
        save_strategy="no", report_to=[], seed=0, disable_tqdm=True, lilaw_warmup_steps=2, lilaw_lr=0.5,
        **overrides,
    )  # fmt: skip
    trainer = LiLAWTrainer(model=model, args=args, train_dataset=train, meta_dataset=meta)
    trainer.train()
    trajectory = [(h["lilaw/alpha"], h["lilaw/beta"], h["lilaw/delta"]) for h in trainer.state.log_history if "loss" in h]
    return trainer, trajectory, {k: v.detach().clone() for k, v in model.state_dict().items()}


def _spy_builds(monkeypatch):
    built = []
    original = TensorBatchCache.build.__func__

    def spy(cls, *args, **kwargs):
        cache = original(cls, *args, **kwargs)
        built.append(cache)
        return cache

    monkeypatch.setattr(TensorBatchCache, "build", classmethod(spy))
    return built


def _identical(a, b):
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=0, atol=0)


def test_cached_meta_set_equals_the_general_path(tmp_path, blob_splits, monkeypatch):
    built = _spy_builds(monkeypatch)
    cached, cached_traj, cached_weights = _run(tmp_path / "cached", blob_splits["train"], blob_splits["meta"])
    assert len(built) == 1 and built[0] is not None and len(built[0]) == len(blob_splits["meta"])
    # A format transform (here one that changes nothing) may draw random numbers: the general path is taken.
    transformed = blob_splits["meta"].with_transform(lambda batch: batch)
    general, general_traj, general_weights = _run(tmp_path / "general", blob_splits["train"], transformed)
    assert len(built) == 2 and built[1] is None
    assert cached.meta_steps == general.meta_steps == 11  # the 12th is owed to a 15th step
    assert cached.lilaw_parameters() == general.lilaw_parameters()
    assert cached_traj == general_traj and len(cached_traj) == 2
    assert cached.lilaw_parameters() != {"alpha": 10.0, "beta": 2.0, "delta": 6.0}
    _identical(cached_weights, general_weights)


def test_cached_meta_set_in_train_mode_forward_equals_the_general_path(tmp_path, blob_splits):
    # Dropout in the meta forward draws from the global RNG on both paths, in the same order.
    cached = _run(tmp_path / "cached", blob_splits["train"], blob_splits["meta"], lilaw_meta_forward_mode="train")
    general = _run(tmp_path / "general", blob_splits["train"], blob_splits["meta"].with_transform(lambda b: b),
                   lilaw_meta_forward_mode="train")  # fmt: skip
    assert cached[0].lilaw_parameters() == general[0].lilaw_parameters()
    assert cached[1] == general[1]
    _identical(cached[2], general[2])


def test_meta_set_with_ignored_labels_takes_the_general_path(tmp_path, blob_splits, monkeypatch):
    built = _spy_builds(monkeypatch)
    meta = blob_splits["meta"].map(lambda row, i: {"label": -100 if i % 5 == 0 else row["label"]}, with_indices=True)
    trainer, _, _ = _run(tmp_path, blob_splits["train"], meta)
    assert len(built) == 1 and built[0] is not None  # cacheable, but the -100 rows need the masking path
    assert trainer.meta_steps == 11
    general = _run(tmp_path / "general", blob_splits["train"], meta.with_transform(lambda b: b))[0]
    assert trainer.lilaw_parameters() == general.lilaw_parameters()


def test_meta_cache_off_equals_auto(tmp_path, blob_splits, monkeypatch):
    built = _spy_builds(monkeypatch)
    auto = _run(tmp_path / "auto", blob_splits["train"], blob_splits["meta"])
    off = _run(tmp_path / "off", blob_splits["train"], blob_splits["meta"], lilaw_meta_cache="off")
    assert len(built) == 1  # "off" never builds one
    assert auto[0].lilaw_parameters() == off[0].lilaw_parameters() and auto[1] == off[1]
    _identical(auto[2], off[2])


def test_the_run_is_the_one_before_the_fast_paths_went(tmp_path, blob_splits):
    # Logged (α, β, δ, mean W) and final α, β, δ of this run as given by the previous implementation (a one-node
    # autograd Function for the training weights and a closed-form meta gradient, both bit-equal to autograd):
    # the plain path reproduces them (bit for bit on this CPU; to rounding elsewhere).
    trainer, trajectory, _ = _run(tmp_path, blob_splits["train"], blob_splits["meta"])
    mean_w = [h["lilaw/w"] for h in trainer.state.log_history if "loss" in h]
    logged = [value for t, w in zip(trajectory, mean_w, strict=True) for value in (*t, w)]
    assert logged == pytest.approx([9.981304168701172, 2.066511392593384, 6.05877685546875, 1.5986576080322266,
                                    9.956143379211426, 2.246453046798706, 6.199748992919922, 1.6131813049316406],
                                   rel=1e-6)  # fmt: skip
    expected = {"alpha": 9.938252449035645, "beta": 2.4068541526794434, "delta": 6.333099365234375}
    assert trainer.lilaw_parameters() == pytest.approx(expected, rel=1e-6)


def test_compiled_step_math_gives_the_same_run(tmp_path, blob_splits):
    from torch._dynamo.utils import counters

    eager = _run(tmp_path / "eager", blob_splits["train"], blob_splits["meta"])
    torch._dynamo.reset()  # an earlier test may have compiled the same graphs: the count would not grow
    compiled_before = counters["stats"]["unique_graphs"]
    compiled = _run(tmp_path / "compiled", blob_splits["train"], blob_splits["meta"], lilaw_compile=True)
    assert counters["stats"]["unique_graphs"] > compiled_before  # the step math did run compiled
    # Fused kernels round differently: equal to float32 rounding, not bit for bit.
    for (a, b, d), (a2, b2, d2) in zip(eager[1], compiled[1], strict=True):
        assert a2 == pytest.approx(a, rel=1e-6) and b2 == pytest.approx(b, rel=1e-6) and d2 == pytest.approx(d, rel=1e-6)
    for name, value in eager[2].items():
        torch.testing.assert_close(compiled[2][name], value, rtol=1e-5, atol=1e-6)
    assert compiled[0].meta_steps == eager[0].meta_steps == 11
