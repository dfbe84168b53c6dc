import datasets
import numpy as np
import pytest
import torch
from transformers import TrainerCallback, TrainingArguments, default_data_collator

from hf_lilaw.core.checkpoint import load_state_file, write_manifest
from hf_lilaw.elr import ELRConfig, ELRTrainer
from hf_lilaw.elr import trainer as elr_trainer
from hf_lilaw.elr.trainer import ELR_STATE_NAME
from hf_lilaw.functional.elr import elr_probabilities

from conftest import REFERENCE_ARGS, StopAfter, TinyNet, model_state, plain_eval_loss, trainer_with_cross_entropy


def config(tmp_path, **overrides) -> ELRConfig:
    base = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=2, learning_rate=0.05,
        logging_steps=4, save_strategy="no", report_to=[], seed=0, disable_tqdm=True,
    )  # fmt: skip
    base.update(overrides)
    return ELRConfig(**base)


class GradientRecorder(TrainerCallback):
    def __init__(self):
        self.grads = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append(torch.cat([p.grad.flatten().clone() for p in model.parameters()]))


class CountSteps(TrainerCallback):
    def __init__(self):
        self.steps = 0

    def on_step_begin(self, *args, **kwargs):
        self.steps += 1


def test_drop_in_swap_logs_checkpoints_and_card(tmp_path, blob_splits):
    """An unchanged Trainer script with Trainer replaced by ELRTrainer."""
    torch.manual_seed(0)
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=2,
                             learning_rate=0.05, logging_steps=4, save_strategy="epoch", report_to=[], disable_tqdm=True)
    trainer = ELRTrainer(model=TinyNet(), args=args, train_dataset=blob_splits["train"])
    assert isinstance(trainer.args, ELRConfig) and (trainer.args.elr_lambda, trainer.args.elr_beta) == (3.0, 0.7)
    trainer.train()
    targets = trainer.elr_targets()
    assert targets.shape == (192, 3) and targets.dtype == torch.float32 and targets.device.type == "cpu"
    # Each sample was seen twice: its target's mass is (1 − β)(1 + β) = 1 − β².
    torch.testing.assert_close(targets.sum(1), torch.full((192,), 1 - 0.7**2), rtol=0, atol=1e-6)
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all("elr/ce" in h and "elr/reg" in h for h in logs)
    assert all(h["elr/reg"] < 0 for h in logs)  # log(1 − ⟨p, t⟩) < 0 once t has mass
    # The logged loss is the mean of ce + λ·reg over the logging window (the same samples).
    for h in logs:
        assert h["loss"] == pytest.approx(h["elr/ce"] + 3.0 * h["elr/reg"], abs=2e-4)
    checkpoint = tmp_path / "checkpoint-24"
    saved = load_state_file(checkpoint / ELR_STATE_NAME, what="ELR targets")
    assert saved["world_size"] == 1 and saved["state"]["updates"] == 24
    torch.testing.assert_close(saved["state"]["targets"], targets, rtol=0, atol=0)
    card = (checkpoint / "README.md").read_text()
    assert "**ELR**" in card and "Early-Learning Regularization" in card and "elr_lambda=3" in card


def test_lambda_zero_is_exactly_trainer_with_cross_entropy(tmp_path, blob_splits):
    plain = trainer_with_cross_entropy(tmp_path, blob_splits["train"])
    torch.manual_seed(0)
    elr = TinyNet()
    trainer = ELRTrainer(model=elr, args=ELRConfig(output_dir=str(tmp_path), **REFERENCE_ARGS, elr_lambda=0.0),
                         train_dataset=blob_splits["train"])
    trainer.train()
    for name, value in model_state(plain).items():
        torch.testing.assert_close(model_state(elr)[name], value, rtol=0, atol=0)
    assert trainer.elr_targets().abs().sum() > 0  # the targets still follow the predictions


def test_first_step_targets_and_gradient_by_hand(tmp_path, blob_splits):
    """Step 1: the batch's targets become (1 − β)·p of the initial model (rows found by sample_id), the others
    stay zero, and the gradient is that of mean(CE + λ·log(1 − ⟨p, t⟩))."""
    torch.manual_seed(0)
    model, seen, recorder = TinyNet(), [], GradientRecorder()
    initial = TinyNet()
    initial.load_state_dict(model.state_dict())
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["x"].clone()) if m.training else None, with_kwargs=True)
    train = blob_splits["train"]
    trainer = ELRTrainer(model=model, args=config(tmp_path, max_steps=1, max_grad_norm=0), train_dataset=train,
                         callbacks=[recorder])
    trainer.train()
    rows = {tuple(x): i for i, x in enumerate(np.asarray(train["x"]).tolist())}
    ids = torch.tensor([rows[tuple(x)] for x in seen[0].tolist()])
    labels = torch.tensor(train["label"])[ids]
    logits = initial(seen[0])["logits"]
    p = elr_probabilities(logits)
    expected = 0.3 * p.detach() / p.detach().sum(1, keepdim=True)
    targets = trainer.elr_targets()
    torch.testing.assert_close(targets[ids], expected, rtol=1e-6, atol=1e-7)
    others = torch.ones(192, dtype=torch.bool)
    others[ids] = False
    assert others.sum() == 192 - 16 and targets[others].abs().sum() == 0
    loss = (torch.nn.functional.cross_entropy(logits, labels, reduction="none")
            + 3.0 * torch.log(1 - (p * expected).sum(1))).mean()
    grad = torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(initial.parameters()))])
    torch.testing.assert_close(recorder.grads[0], grad, rtol=1e-5, atol=1e-7)


def test_gradient_accumulation_matches_a_large_batch(tmp_path, blob_splits):
    def run(batch_size, accumulation):
        torch.manual_seed(0)
        recorder = GradientRecorder()
        trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path / f"{batch_size}x{accumulation}",
                                                          per_device_train_batch_size=batch_size,
                                                          gradient_accumulation_steps=accumulation),
                             train_dataset=blob_splits["train"], callbacks=[recorder])  # fmt: skip
        trainer.train()
        return trainer, recorder.grads

    big, big_grads = run(16, 1)
    small, small_grads = run(8, 2)
    assert big.state.global_step == small.state.global_step == 24
    assert len(big_grads) == len(small_grads) == 24
    for g_big, g_small in zip(big_grads, small_grads):
        torch.testing.assert_close(g_small, g_big, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(small.elr_targets(), big.elr_targets(), rtol=1e-5, atol=1e-6)
    # the logged means are per sample, whatever the accumulation
    assert [h["elr/reg"] for h in small.state.log_history if "loss" in h] == pytest.approx(
        [h["elr/reg"] for h in big.state.log_history if "loss" in h], rel=1e-4)


def test_resume_from_checkpoint_equals_uninterrupted(tmp_path, blob_splits):
    def make(output_dir, callbacks=None):
        torch.manual_seed(0)
        return ELRTrainer(model=TinyNet(dropout=0.1), args=config(output_dir, num_train_epochs=3, save_strategy="steps",
                                                                  save_steps=10),
                          train_dataset=blob_splits["train"], callbacks=callbacks)  # fmt: skip

    full = make(tmp_path / "full")
    full.train()
    interrupted = make(tmp_path / "resumed", callbacks=[StopAfter(20)])  # checkpoint-20 is mid-epoch (12/epoch)
    interrupted.train()
    assert not torch.equal(interrupted.elr_targets(), full.elr_targets())
    resumed = make(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-20"))
    assert resumed.state.global_step == full.state.global_step == 36
    assert torch.equal(resumed.elr_targets(), full.elr_targets())
    for name, value in model_state(full.model).items():
        torch.testing.assert_close(model_state(resumed.model)[name], value, rtol=0, atol=0)


def test_load_best_model_at_end_restores_the_best_checkpoints_targets(tmp_path, blob_splits):
    trainer = None

    def best_at_step_10(prediction):  # the score peaks at step 10, so checkpoint-10 is the best
        return {"score": -abs(trainer.state.global_step - 10)}

    torch.manual_seed(0)
    trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path, eval_strategy="steps", eval_steps=5, save_strategy="steps",
                                                      save_steps=5, load_best_model_at_end=True,
                                                      metric_for_best_model="score"),
                         train_dataset=blob_splits["train"], eval_dataset=blob_splits["test"],
                         compute_metrics=best_at_step_10)  # fmt: skip
    trainer.train()
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-10")
    best = load_state_file(tmp_path / "checkpoint-10" / ELR_STATE_NAME, what="ELR targets")["state"]
    last = load_state_file(tmp_path / "checkpoint-24" / ELR_STATE_NAME, what="ELR targets")["state"]
    assert not torch.equal(best["targets"], last["targets"])
    assert torch.equal(trainer.elr_targets(), best["targets"])
    assert trainer.elr_state.updates == 10


def test_eval_loss_is_the_plain_mean_cross_entropy(tmp_path, blob_splits, tiny_model):
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path, max_steps=4), train_dataset=blob_splits["train"],
                         eval_dataset=blob_splits["test"])
    trainer.train()
    before = trainer.elr_targets()
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] == pytest.approx(plain_eval_loss(trainer.model, blob_splits["test"]), rel=1e-5)
    assert torch.equal(trainer.elr_targets(), before)  # evaluation never touches the targets


def test_bf16_autocast_keeps_the_targets_in_float32(tmp_path, blob_splits, tiny_model):
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path, bf16=True, use_cpu=True, num_train_epochs=3),
                         train_dataset=blob_splits["train"])
    dtypes = []
    tiny_model.head.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    trainer.train()
    assert torch.bfloat16 in dtypes
    targets = trainer.elr_targets()
    assert targets.dtype == torch.float32 and torch.isfinite(targets).all()
    # Three visits: mass 1 − β³ to float32 precision; bf16 arithmetic (8 bits of mantissa) would miss it by ~1e-3.
    torch.testing.assert_close(targets.sum(1), torch.full((192,), 1 - 0.7**3), rtol=0, atol=2e-6)


def test_streamed_training_set_with_sample_ids(tmp_path, blob_splits, tiny_model):
    from hf_lilaw.core import with_sample_id

    stream = with_sample_id(blob_splits["train"]).to_iterable_dataset(num_shards=2)
    with pytest.raises(ValueError, match="set elr_num_samples"):
        ELRTrainer(model=tiny_model, args=config(tmp_path, max_steps=12), train_dataset=stream)
    with pytest.raises(ValueError, match=r"carry none. Add the ids before streaming, e.g. hf_lilaw.core.with_sample_id"):
        ELRTrainer(model=tiny_model, args=config(tmp_path, max_steps=12, elr_num_samples=192),
                   train_dataset=blob_splits["train"].to_iterable_dataset())
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path, max_steps=24, elr_num_samples=192), train_dataset=stream)
    trainer.train()
    # 24 steps of 16 = two passes over the stream: every sample seen twice
    torch.testing.assert_close(trainer.elr_targets().sum(1), torch.full((192,), 1 - 0.7**2), rtol=0, atol=1e-6)


def test_ids_beyond_the_table_are_refused_naming_elr_num_samples(tmp_path, blob_splits, tiny_model):
    from hf_lilaw.core import with_sample_id

    stream = with_sample_id(blob_splits["train"]).to_iterable_dataset()
    steps = CountSteps()
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path, max_steps=12, elr_num_samples=100),
                         train_dataset=stream, callbacks=[steps])
    with pytest.raises(ValueError, match=r"values in \[96, 111\] but ELR's targets have 100 rows.*Set elr_num_samples"):
        trainer.train()
    assert steps.steps == 7  # the first batch reaching id 100 stops it (ids arrive in order: 0-15, 16-31, ...)
    assert trainer.elr_state.updates == 6


def test_memory_refusal_names_the_size_and_the_fix_before_any_step(tmp_path, blob_splits, tiny_model, monkeypatch):
    monkeypatch.setattr(elr_trainer, "free_memory_bytes", lambda device: 4000)
    steps = CountSteps()
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path), train_dataset=blob_splits["train"], callbacks=[steps])
    # 193 rows (one sink) × 3 classes × 4 B = 2316 B > half of 4000 B
    with pytest.raises(ValueError, match=r"need 2.32 kB \(192 samples × 3 classes × 4 bytes\) but host memory has 4.00 kB free.*at most 50%.*Free host memory"):
        trainer.train()
    trainer.elr_state.device = torch.device("meta")  # where the targets would live on an accelerator
    with pytest.raises(ValueError, match="Set elr_targets_on_cpu=True"):
        trainer.train()
    assert steps.steps == 0 and trainer.elr_state.table is None
    monkeypatch.setattr(elr_trainer, "free_memory_bytes", lambda device: 4640)  # 2316 B is just within half
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path, max_steps=1), train_dataset=blob_splits["train"])
    trainer.train()
    assert trainer.elr_state.updates == 1


def test_bad_input_is_refused_with_the_fix(tmp_path, blob_splits, tiny_model):
    train = blob_splits["train"]
    with pytest.raises(ValueError, match="elr_lambda=0"):
        ELRTrainer(model=tiny_model, args=config(tmp_path), train_dataset=train, compute_loss_func=lambda *a, **k: 0)
    with pytest.raises(ValueError, match="sample_id' values repeat"):
        ELRTrainer(model=tiny_model, args=config(tmp_path), train_dataset=train.add_column("sample_id", [0, 1] * 96))
    with pytest.raises(ValueError, match="elr_num_samples=10 but train_dataset has sample_id 191"):
        ELRTrainer(model=tiny_model, args=config(tmp_path, elr_num_samples=10), train_dataset=train)
    with pytest.raises(ValueError, match="train_dataset is empty"):
        ELRTrainer(model=tiny_model, args=config(tmp_path), train_dataset=train.select([]))
    steps = CountSteps()
    with pytest.raises(ValueError, match=r"train_dataset has labels in \[0, 2\] but the model outputs 2 classes"):
        ELRTrainer(model=TinyNet(num_classes=2), args=config(tmp_path), train_dataset=train, callbacks=[steps]).train()
    assert steps.steps == 0


def test_torch_formatted_set_reads_ids_as_ints_and_trains_the_same(tmp_path, blob_splits):
    train = blob_splits["train"]
    runs = {}
    def own_collator(rows):
        return default_data_collator(rows)

    for name, data, collator in [("plain", train, None), ("torch", train.with_format("torch"), None),
                                 ("default", train.with_format("torch"), default_data_collator),
                                 ("collator", train.with_format("torch"), own_collator)]:
        torch.manual_seed(0)
        trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path / name), train_dataset=data, data_collator=collator)
        trainer.train()
        runs[name] = trainer
    for name in ("torch", "default"):
        row = runs[name].train_dataset[0]
        assert isinstance(row["sample_id"], int) and isinstance(row["x"], torch.Tensor)  # only the ids unformatted
    assert isinstance(runs["collator"].train_dataset[0]["sample_id"], torch.Tensor)  # a collator of one's own: as given
    for name in ("torch", "default", "collator"):
        torch.testing.assert_close(runs[name].elr_targets(), runs["plain"].elr_targets(), rtol=0, atol=0)
        for key, value in model_state(runs["plain"].model).items():
            torch.testing.assert_close(model_state(runs[name].model)[key], value, rtol=0, atol=0)


def test_own_sample_ids_index_the_targets(tmp_path, blob_splits, tiny_model):
    """A data set with its own ids (e.g. a split of a larger one) keeps them: the table spans the largest id."""
    train = blob_splits["train"].add_column("sample_id", np.arange(192) * 2 + 1)
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path, num_train_epochs=1), train_dataset=train)
    trainer.train()
    targets = trainer.elr_targets()
    assert targets.shape == (384, 3)
    torch.testing.assert_close(targets[1::2].sum(1), torch.full((192,), 0.3), rtol=0, atol=1e-6)
    assert targets[0::2].abs().sum() == 0


def test_cross_process_update_pads_to_the_batch_size_and_keeps_one_copy_of_a_repeated_sample(tmp_path, blob_splits,
                                                                                               tiny_model, monkeypatch):
    """`_gather_updates` as a second process would see it: its own batch of 3 (padded to 16) then another process's
    batch of 2, which repeats sample 5; the later copy wins, padding goes to the sink row (192)."""
    trainer = ELRTrainer(model=tiny_model, args=config(tmp_path), train_dataset=blob_splits["train"])
    trainer.elr_state.allocate(192, 3)
    other = torch.full((16, 4), 192.0, dtype=torch.float64)
    other[:2, 0] = torch.tensor([5.0, 9.0])
    other[:2, 1:] = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=torch.float64)
    monkeypatch.setattr(trainer.accelerator, "gather", lambda packed: torch.cat([packed, other]))
    ids, rows = trainer._gather_updates(torch.tensor([5, 7, 1]), torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    assert ids.shape == (32,) and rows.shape == (32, 3) and rows.dtype == torch.float32
    assert ids[:3].tolist() == [192, 7, 1] and ids[16:18].tolist() == [5, 9]
    assert (ids[3:16] == 192).all() and (ids[18:] == 192).all()
    trainer.elr_state.table.index_copy_(0, ids, rows)
    torch.testing.assert_close(trainer.elr_targets()[[5, 9, 7, 1]],
                               torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0, 1.0, 0], [0, 0, 1.0]]))


def _joined(*parts, offset: bool) -> torch.utils.data.ConcatDataset:
    """Parts each numbered from 0 by with_sample_id, joined by torch (ids offset by the earlier parts' sizes or not)."""
    from hf_lilaw.core import with_sample_id

    joined, start = [], 0
    for part in parts:
        part = with_sample_id(part)
        if offset:
            part = part.map(lambda row, start=start: {"sample_id": row["sample_id"] + start})
        joined.append(part.with_format("torch"))
        start += len(part)
    return torch.utils.data.ConcatDataset(joined)


def test_ids_repeated_across_joined_parts_are_refused(tmp_path):
    from conftest import blobs
    from hf_lilaw.core import with_sample_id

    message = r"Two training examples of epoch 0 carry sample_id \d+: they would share one ELR target.*offset"
    torch.manual_seed(0)
    steps = CountSteps()
    trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path, per_device_train_batch_size=8, num_train_epochs=1,
                                                      gradient_accumulation_steps=2),
                         train_dataset=_joined(blobs(24), blobs(24, seed=5), offset=False), callbacks=[steps])  # fmt: skip
    with pytest.raises(ValueError, match=message):
        trainer.train()
    assert trainer.elr_targets().shape[0] == 48  # one row per id of both parts: the ids are only repeated
    assert steps.steps <= 3  # refused within the first epoch (6 batches of 8 over 24 distinct ids)
    # concatenated streams: the second part's ids 0-7 come in the fourth batch
    parts = [with_sample_id(blobs(24, seed=s)).to_iterable_dataset() for s in (0, 5)]
    stream = datasets.concatenate_datasets(parts)
    steps = CountSteps()
    trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path, per_device_train_batch_size=8, max_steps=6,
                                                      elr_num_samples=48), train_dataset=stream, callbacks=[steps])
    with pytest.raises(ValueError, match=message.replace(r"\d+", "7")):
        trainer.train()
    assert steps.steps == 4 and trainer.elr_state.updates == 3
    # the same id twice within one batch
    twice = _joined(blobs(4), blobs(4, seed=5), offset=False)
    trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path, per_device_train_batch_size=8, num_train_epochs=1),
                         train_dataset=twice)
    with pytest.raises(ValueError, match=message):
        trainer.train()
    # the missing-ids advice says so too
    with pytest.raises(ValueError, match="Ids must be unique across the whole training set"):
        ELRTrainer(model=TinyNet(), args=config(tmp_path, max_steps=2, elr_num_samples=48),
                   train_dataset=blobs(24).to_iterable_dataset())


def test_joined_parts_with_offset_ids_train_and_resume_exactly(tmp_path):
    from conftest import blobs

    joined = _joined(blobs(24), blobs(24, seed=5), offset=True)

    def make(output_dir, callbacks=None):
        torch.manual_seed(0)
        return ELRTrainer(model=TinyNet(), args=config(output_dir, per_device_train_batch_size=8, num_train_epochs=3,
                                                       gradient_accumulation_steps=2, save_strategy="steps",
                                                       save_steps=4),
                          train_dataset=joined, callbacks=callbacks)  # fmt: skip

    full = make(tmp_path / "full")
    full.train()  # 3 epochs of 6 batches: no repeat within an epoch, so nothing refused
    torch.testing.assert_close(full.elr_targets().sum(1), torch.full((48,), 1 - 0.7**3), rtol=0, atol=1e-6)
    make(tmp_path / "resumed", callbacks=[StopAfter(4)]).train()  # checkpoint-4: mid-epoch 1 (3 steps/epoch)
    resumed = make(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-4"))
    assert resumed.state.global_step == full.state.global_step == 9
    assert torch.equal(resumed.elr_targets(), full.elr_targets())


def test_a_repeat_is_found_after_a_resume_when_its_first_copy_came_before_the_checkpoint(tmp_path):
    from conftest import blobs
    from hf_lilaw.core import with_sample_id

    part = with_sample_id(blobs(16))
    stream = datasets.concatenate_datasets([part.to_iterable_dataset()] * 2)  # ids 0-15 twice

    def make(callbacks=None):
        torch.manual_seed(0)
        return ELRTrainer(model=TinyNet(), args=config(tmp_path, per_device_train_batch_size=4, max_steps=8,
                                                       elr_num_samples=32, save_strategy="steps", save_steps=2),
                          train_dataset=stream, callbacks=callbacks)  # fmt: skip

    make(callbacks=[StopAfter(2)]).train()  # ids 0-7 seen, then the checkpoint
    with pytest.raises(ValueError, match="carry sample_id 3: they would share one ELR target"):
        make().train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))  # batch 5 (ids 0-3) repeats batch 1


def test_resume_with_another_training_set_of_the_same_size_is_refused(tmp_path, caplog):
    from conftest import blobs

    full = blobs(80, noise_rate=0.0)

    def make(seed):
        torch.manual_seed(0)
        return ELRTrainer(model=TinyNet(), args=config(tmp_path, per_device_train_batch_size=8, num_train_epochs=2,
                                                       save_strategy="steps", save_steps=3),
                          train_dataset=full.train_test_split(test_size=0.5, seed=seed)["train"])  # fmt: skip

    make(1).train()
    checkpoint = str(tmp_path / "checkpoint-3")
    saved = load_state_file(tmp_path / "checkpoint-3" / ELR_STATE_NAME, what="ELR targets")["state"]
    assert isinstance(saved["fingerprint"], str) and len(saved["fingerprint"]) == 64
    with pytest.raises(ValueError, match=f"from checkpoint {checkpoint}, were built for another training set"):
        make(2).train(resume_from_checkpoint=checkpoint)
    make(1).train(resume_from_checkpoint=checkpoint)  # the same set resumes
    # a checkpoint written before fingerprints were saved still resumes, with a warning
    del saved["fingerprint"]
    torch.save({"world_size": 1, "state": saved}, tmp_path / "checkpoint-3" / ELR_STATE_NAME)
    write_manifest(checkpoint, checksums=True)
    trainer = make(2)
    with caplog.at_level("WARNING", logger="hf_lilaw"):
        trainer.train(resume_from_checkpoint=checkpoint)
    assert "predates ELR's training-set fingerprint" in caplog.text


def test_train_dataset_assigned_after_construction(tmp_path):
    from conftest import blobs
    from hf_lilaw.core import with_sample_id

    for dataset in (blobs(24), with_sample_id(blobs(24))):
        trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path, per_device_train_batch_size=8, num_train_epochs=1))
        trainer.train_dataset = dataset
        trainer.train()
        torch.testing.assert_close(trainer.elr_targets().sum(1), torch.full((24,), 0.3), rtol=0, atol=1e-6)
    trainer.train_dataset = with_sample_id(blobs(40))  # a second train() with a bigger set
    with pytest.raises(ValueError, match=r"ELR's targets are \(24, 3\).*from an earlier train\(\) call.*40 samples"):
        trainer.train()
    trainer.train_dataset = blobs(24, seed=7)  # the same size, other labels
    with pytest.raises(ValueError, match=r"from an earlier train\(\) call, were built for another training set"):
        trainer.train()


JOINED_WORKER = '''
import sys
sys.path[:0] = {paths!r}  # tests/ (conftest) and tests/elr/ (this file)
import torch
from _distributed import write_rank_result
from conftest import TinyNet, blobs
from test_elr_trainer import _joined
from hf_lilaw import ELRConfig, ELRTrainer

out, offset = sys.argv[1], sys.argv[2] == "offset"
args = ELRConfig(output_dir=out, per_device_train_batch_size=8, num_train_epochs=2, learning_rate=0.05, report_to=[],
                 disable_tqdm=True, save_strategy="no", seed=0, use_cpu=True)
torch.manual_seed(0)
trainer = ELRTrainer(model=TinyNet(), args=args, train_dataset=_joined(blobs(12), blobs(8, seed=5), offset=offset))
try:
    trainer.train()
    result = trainer.elr_targets().sum(1).tolist()
except ValueError as error:
    result = str(error)
write_rank_result(out, result)  # and ends the process the one safe way (see _distributed.end_worker)
'''


def test_joined_parts_under_two_processes(tmp_path):
    """20 rows on 2 × 8: each process's last batch is padded with the epoch's first samples, its own among them;
    that is no repeat, but ids repeated across the joined parts are."""
    import json
    from pathlib import Path

    from _distributed import torchrun

    worker = tmp_path / "worker.py"
    worker.write_text(JOINED_WORKER.format(paths=[str(Path(__file__).parent.parent), str(Path(__file__).parent)]))
    for mode in ("offset", "repeat"):
        (tmp_path / mode).mkdir()
        torchrun(worker, tmp_path / mode, mode, log=tmp_path / f"{mode}.log")
        ranks = [json.loads((tmp_path / mode / f"rank{r}.json").read_text()) for r in range(2)]
        if mode == "offset":
            assert ranks[0] == ranks[1] and min(ranks[0]) > 0.29  # every sample visited, twice or more
        else:
            assert all("they would share one ELR target" in rank for rank in ranks), ranks


class PlainLossELR(ELRTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        return torch.nn.functional.cross_entropy(model(x=inputs["x"])["logits"], inputs["labels"])


def test_a_loss_that_bypasses_elr_is_refused_at_the_first_step(tmp_path, blob_splits):
    # It trained as plain cross-entropy (targets never updated, no elr/* in the logs) while the card said ELR.
    torch.manual_seed(0)
    model = TinyNet()
    before = model_state(model)
    trainer = PlainLossELR(model=model, args=config(tmp_path), train_dataset=blob_splits["train"])
    with pytest.raises(RuntimeError, match=r"^ELRTrainer's training loss did not go through ELR's regularised loss: "
                                           r"PlainLossELR overrides compute_loss .*stopped at step 1, before its optimizer step"):
        trainer.train()
    assert trainer.state.global_step == 0 and all(torch.equal(before[k], v) for k, v in model_state(model).items())
    trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path), train_dataset=blob_splits["train"])
    trainer.compute_loss_func = lambda outputs, labels, num_items_in_batch=None: outputs["logits"].sum() * 0
    with pytest.raises(RuntimeError, match="compute_loss_func was replaced after ELRTrainer was built"):
        trainer.train()


def test_the_cards_training_snippet_configures_this_run(tmp_path, blob_splits, tiny_model):
    # The snippet rounded λ and β (":g": 0.123456789 -> 0.123457) and left out elr_num_samples / elr_targets_on_cpu.
    args = config(tmp_path, elr_lambda=0.123456789, elr_beta=0.7, elr_num_samples=500, elr_targets_on_cpu=True)
    trainer = ELRTrainer(model=tiny_model, args=args, train_dataset=blob_splits["train"])
    snippet = trainer.model_card_values()["train_snippet"]
    code = snippet.split("args = ", 1)[1].split("\n", 1)[0]
    rebuilt = eval(code, {"ELRConfig": ELRConfig})
    assert {f: getattr(rebuilt, f) for f in ("elr_lambda", "elr_beta", "elr_num_samples", "elr_targets_on_cpu")} == {
        "elr_lambda": 0.123456789, "elr_beta": 0.7, "elr_num_samples": 500, "elr_targets_on_cpu": True}


class OutOfMemoryOnce(TrainerCallback):
    """A CUDA out-of-memory error right after optimizer step ``step``, once: auto_find_batch_size retries."""

    def __init__(self, step: int):
        self.step, self.fired = step, False

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step and not self.fired:
            self.fired = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class RowsWithIds(torch.utils.data.Dataset):
    """A torch Dataset (ids checked batch by batch) of ``dataset``'s rows with their sample ids."""

    def __init__(self, dataset):
        self.rows = [{"x": row["x"], "label": row["label"], "sample_id": i} for i, row in enumerate(dataset)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


@pytest.mark.parametrize("step", [1, 2])
def test_auto_find_batch_size_retries_after_an_out_of_memory_error_without_a_false_repeat(tmp_path, step):
    # The retried loop starts again at epoch 0: the ids the abandoned loop had seen were taken for repeats, and the
    # run stopped with "Two training examples of epoch 0 carry sample_id ..." about ids that were unique.
    from conftest import blobs

    torch.manual_seed(0)
    trainer = ELRTrainer(model=TinyNet(), args=config(tmp_path, max_steps=4, auto_find_batch_size=True),
                         train_dataset=RowsWithIds(blobs(64)), callbacks=[OutOfMemoryOnce(step)])  # fmt: skip
    trainer.train()
    assert trainer._train_batch_size == 14 and trainer.state.global_step == 4
    assert trainer.elr_state.updates == step + 4  # the abandoned loop's batches, then the retried loop's
