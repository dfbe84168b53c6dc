import datasets
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate
from transformers import DataCollatorWithPadding, default_data_collator
from transformers.trainer_utils import RemoveColumnsCollator

from hf_lilaw.core.tensor_cache import TensorBatchCache, deterministic_rows, known_rowwise_collator


def _features_dataset(rows: int = 50, width: int = 12, fmt: str | None = "torch") -> datasets.Dataset:
    rng = np.random.default_rng(0)
    ds = datasets.Dataset.from_dict(
        {"features": rng.normal(size=(rows, width)).astype(np.float32), "label": rng.integers(0, 5, rows)}
    )
    return ds.with_format(fmt) if fmt else ds


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("fmt", ["torch", "numpy", None])
def test_batches_equal_the_per_step_collated_batches(fmt):
    ds = _features_dataset(fmt=fmt)
    cache = TensorBatchCache.build(ds, default_data_collator)
    assert cache is not None and len(cache) == 50
    assert set(cache.columns) == {"features", "labels"}
    generator = torch.Generator().manual_seed(3)
    for size in (1, 7, 16, 50):
        indices = torch.randperm(50, generator=generator)[:size].tolist()
        _assert_same(cache.batch(indices), default_data_collator(ds.__getitems__(indices)))
    # Index tensors work too, and each call returns a fresh dict (the trainer pops "labels" from it).
    batch = cache.batch(torch.tensor([4, 4, 0]))
    batch.pop("labels")
    assert "labels" in cache.batch([0])
    _assert_same(batch, {"features": torch.as_tensor(np.asarray(ds.with_format("numpy")["features"])[[4, 4, 0]])})


def test_default_collate_and_images():
    rng = np.random.default_rng(1)
    ds = datasets.Dataset.from_dict(
        {"pixel_values": rng.normal(size=(20, 1, 6, 6)).astype(np.float32), "label": rng.integers(0, 3, 20)}
    ).with_format("torch")
    cache = TensorBatchCache.build(ds, default_collate)
    assert cache is not None
    indices = [19, 3, 3, 8]
    _assert_same(cache.batch(indices), default_collate(ds.__getitems__(indices)))
    assert cache.nbytes == 20 * 36 * 4 + 20 * 8


def test_transform_or_custom_collator_needs_force():
    ds = _features_dataset(fmt=None)
    transformed = ds.with_transform(lambda b: {"features": [torch.tensor(f) * 2 for f in b["features"]], "label": b["label"]})
    assert not deterministic_rows(transformed)
    assert TensorBatchCache.build(transformed, default_data_collator) is None

    def custom(rows):
        return {"x": torch.stack([torch.as_tensor(r["features"]) for r in rows]),
                "labels": torch.tensor([int(r["label"]) for r in rows])}  # fmt: skip

    assert not known_rowwise_collator(custom)
    assert TensorBatchCache.build(ds, custom) is None
    forced = TensorBatchCache.build(transformed, custom, force=True)
    assert forced is not None
    indices = [5, 1, 30]
    _assert_same(forced.batch(indices), custom(transformed.__getitems__(indices)))


def test_known_collators_also_behind_trainers_column_remover():
    wrapped = RemoveColumnsCollator(default_data_collator, signature_columns=["features", "label"])
    assert known_rowwise_collator(wrapped) and known_rowwise_collator(default_collate)
    padding = DataCollatorWithPadding(tokenizer=None)  # type: ignore[arg-type]
    assert not known_rowwise_collator(padding)
    assert not known_rowwise_collator(RemoveColumnsCollator(padding, signature_columns=["input_ids"]))


def test_padding_to_the_batch_longest_row_is_caught_even_when_forced():
    lengths = [3] * 39 + [9]

    def pad_to_longest(rows):
        width = max(len(r["ids"]) for r in rows)
        return {"ids": torch.tensor([list(r["ids"]) + [0] * (width - len(r["ids"])) for r in rows]),
                "labels": torch.tensor([r["label"] for r in rows])}  # fmt: skip

    ds = datasets.Dataset.from_dict({"ids": [list(range(n)) for n in lengths], "label": [0] * 40})
    assert TensorBatchCache.build(ds, pad_to_longest, force=True) is None


def test_size_bound_streams_and_non_tensor_columns():
    ds = _features_dataset(rows=50, width=12)
    row_bytes = 12 * 4 + 8
    assert TensorBatchCache.build(ds, default_data_collator, max_bytes=50 * row_bytes) is not None
    assert TensorBatchCache.build(ds, default_data_collator, max_bytes=50 * row_bytes - 1) is None
    assert TensorBatchCache.build(ds.to_iterable_dataset(), default_data_collator) is None
    with_text = ds.add_column("text", ["a"] * 50)
    # default_data_collator drops strings, per step as well; a collator that keeps them as a list can't be cached.
    assert set(TensorBatchCache.build(with_text, default_data_collator).columns) == {"features", "labels"}

    def keeps_text(rows):
        return {**default_data_collator(rows), "text": [r["text"] for r in rows]}

    assert TensorBatchCache.build(with_text, keeps_text, force=True) is None
    with pytest.raises(ValueError, match="max_bytes"):
        TensorBatchCache.build(ds, default_data_collator, max_bytes=-1)


def test_prepare_runs_on_the_whole_set_and_on_the_probes():
    ds = _features_dataset()
    calls = []

    def prepare(batch):
        calls.append(len(batch["labels"]))
        return {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}

    cache = TensorBatchCache.build(ds, default_data_collator, prepare=prepare)
    assert cache is not None and cache.columns["features"].dtype == torch.float64
    assert calls == [50, 1, 1, 8, 8]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cache_lives_on_the_device():
    ds = _features_dataset()
    cache = TensorBatchCache.build(ds, default_data_collator, prepare=lambda b: {k: v.cuda() for k, v in b.items()})
    assert cache is not None and cache.columns["features"].is_cuda
    batch = cache.batch([1, 2, 3])
    assert batch["features"].is_cuda
    _assert_same({k: v.cpu() for k, v in batch.items()}, default_data_collator(ds.__getitems__([1, 2, 3])))


def test_nan_values_are_cached_too():
    ds = _features_dataset(rows=10).map(lambda row: {"features": [float("nan")] * 12})
    cache = TensorBatchCache.build(ds, default_data_collator)
    assert cache is not None and torch.isnan(cache.batch([3])["features"]).all()
