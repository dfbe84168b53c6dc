import os
import types

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from hf_lilaw import LiLAWConfig, LiLAWTrainer, find_label_issues
from hf_lilaw.analysis import HARDNESS_SCORES, TrainingDynamics, label_issue_metrics
from hf_lilaw.analysis.dynamics import DYNAMICS_FILE_NAME, TrainingDynamicsRecorder

from conftest import KillAfter, TinyNet, blobs


def frozen_trainer(tmp_path, train, recorder, **overrides):
    """learning_rate=0: the model never changes, so every recorded epoch must equal a fresh prediction."""
    torch.manual_seed(0)
    args = LiLAWConfig(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=3, learning_rate=0.0,
                       save_strategy="no", report_to=[], disable_tqdm=True, lilaw_warmup_steps=0, **overrides)
    return LiLAWTrainer(model=TinyNet(), args=args, train_dataset=train, meta_dataset=blobs(32, seed=9),
                        callbacks=[recorder])


@pytest.mark.parametrize("remove_unused_columns", [True, False])
def test_recorded_rows_follow_sample_ids_through_shuffling(tmp_path, remove_unused_columns):
    train = blobs(96, seed=4)
    train = train.add_column("sample_id", np.arange(100, 196))  # ids need not be row positions
    recorder = TrainingDynamicsRecorder(output_dir=str(tmp_path / "dyn"))
    trainer = frozen_trainer(tmp_path, train, recorder, remove_unused_columns=remove_unused_columns)
    trainer.train()
    dynamics = recorder.dynamics
    assert (dynamics.num_epochs, dynamics.num_samples) == (3, 196)
    assert np.isnan(dynamics.prob_label[:, :100]).all()  # ids never used stay NaN

    expected = trainer.score_samples(train.remove_columns("sample_id"))
    for epoch in range(3):
        np.testing.assert_allclose(dynamics.prob_label[epoch, 100:], expected["prob_label"], rtol=1e-5)
        np.testing.assert_allclose(dynamics.loss[epoch, 100:], expected["loss"], rtol=1e-5)
    # α, β, δ move between steps, so the weights of a fixed model still differ per epoch, but stay in range
    assert np.all((dynamics.w_alpha[:, 100:] > 0.26) & (dynamics.w_alpha[:, 100:] < 1))
    saved = TrainingDynamics.load(tmp_path / "dyn" / DYNAMICS_FILE_NAME)
    np.testing.assert_array_equal(saved.margin, dynamics.margin)


def test_sample_ids_are_added_when_missing(tmp_path):
    recorder = TrainingDynamicsRecorder()
    trainer = frozen_trainer(tmp_path, blobs(64, seed=5), recorder)
    trainer.train()
    assert recorder.dynamics.num_samples == 64
    assert not np.isnan(recorder.dynamics.prob_label).any()


def test_score_samples_columns_order_and_values(tmp_path, blob_splits):
    torch.manual_seed(0)
    args = LiLAWConfig(output_dir=str(tmp_path), num_train_epochs=3, per_device_train_batch_size=16,
                       learning_rate=0.05, report_to=[], save_strategy="no", disable_tqdm=True)
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blob_splits["train"],
                           meta_dataset=blob_splits["meta"])
    trainer.train()
    test = blob_splits["test"]
    scores = trainer.score_samples(test)
    assert scores.column_names == ["prob_label", "prob_max", "prediction", "loss", "w_alpha", "w_beta", "w_delta",
                                   "w", "difficulty"]
    assert len(scores) == len(test)
    with torch.no_grad():
        logits = trainer.model(torch.tensor(test["x"]))["logits"]
    probs = logits.softmax(-1)
    labels = torch.tensor(test["label"])
    p = trainer.lilaw_parameters()
    s_y, m = probs[torch.arange(len(labels)), labels], probs.max(-1).values
    np.testing.assert_allclose(scores["prob_label"], s_y, rtol=1e-5)
    np.testing.assert_allclose(scores["w_alpha"], torch.sigmoid(p["alpha"] * s_y - m), rtol=1e-5)
    np.testing.assert_array_equal(scores["prediction"], logits.argmax(-1))
    dominant = np.argmax(np.stack([scores["w_alpha"], scores["w_delta"], scores["w_beta"]]), axis=0)
    assert scores["difficulty"] == [["easy", "moderate", "hard"][d] for d in dominant]


class FeaturesFirst(TinyNet):
    """A dict output whose first field is not the logits (Trainer's predictions would start with it)."""

    def forward(self, x, labels=None):
        features = self.body(x)
        return {"features": features, "logits": self.head(features)}


def test_score_samples_reads_the_logits_whatever_else_the_model_returns(tmp_path, blob_splits):
    torch.manual_seed(0)
    model = FeaturesFirst()
    args = LiLAWConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=16, report_to=[],
                       save_strategy="no", disable_tqdm=True)
    trainer = LiLAWTrainer(model=model, args=args, train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    test = blob_splits["test"]
    scores = trainer.score_samples(test)
    with torch.no_grad():
        logits = model(torch.tensor(test["x"]))["logits"]
    np.testing.assert_array_equal(scores["prediction"], logits.argmax(-1))  # was the argmax of the 16 features
    np.testing.assert_allclose(scores["prob_max"], logits.softmax(-1).max(-1).values, rtol=1e-5)
    assert trainer.predict(test).predictions[0].shape == (len(test), 16)  # predict() itself is unchanged


def test_one_run_finds_the_flipped_labels(tmp_path):
    """End to end: W_α from the training dynamics ranks the injected label errors first."""
    train = blobs(300, noise_rate=0.3, seed=6)
    recorder = TrainingDynamicsRecorder()
    torch.manual_seed(0)
    args = LiLAWConfig(output_dir=str(tmp_path), num_train_epochs=4, per_device_train_batch_size=16,
                       learning_rate=0.05, report_to=[], save_strategy="no", disable_tqdm=True,
                       lilaw_warmup_epochs=1)
    LiLAWTrainer(model=TinyNet(), args=args, train_dataset=train, meta_dataset=blobs(48, seed=7),
                 callbacks=[recorder]).train()
    is_noisy = np.asarray(train["is_noisy"])
    auroc = label_issue_metrics(HARDNESS_SCORES["w_alpha"](recorder.dynamics, epoch=-1), is_noisy)["auroc"]
    assert auroc > 0.85  # measured 0.89 on this toy; chance is 0.5
    # On this toy the noisy rows form a tail, not a second group: the automatic split refuses; a rate flags them.
    assert not find_label_issues(dynamics=recorder.dynamics, score="w_alpha").any()
    issues = find_label_issues(dynamics=recorder.dynamics, score="w_alpha", frac_issues=0.3)
    assert is_noisy[issues].mean() > 0.8  # measured 0.83


def test_recorder_refuses_trainers_that_record_nothing(tmp_path):
    """Under transformers.Trainer or the MLC family the recorder would end the run with no dynamics; both stop
    before the first step instead, and the model is untouched."""
    from transformers import Trainer, TrainingArguments

    from hf_lilaw import CrossEntropy, MetaLabelCorrectionConfig, MLCTrainer

    common = dict(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=16, report_to=[],
                  save_strategy="no", disable_tqdm=True)
    torch.manual_seed(0)
    model = TinyNet()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model=model, args=TrainingArguments(**common), train_dataset=blobs(64),
                      compute_loss_func=CrossEntropy(), callbacks=[TrainingDynamicsRecorder()])
    with pytest.raises(ValueError, match="attach it to hf_lilaw.LiLAWTrainer or hf_lilaw.ELRTrainer"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))

    mlc = MLCTrainer(model=TinyNet(), args=MetaLabelCorrectionConfig(**common), train_dataset=blobs(64),
                     clean_dataset=blobs(32, noise_rate=0.0), callbacks=[TrainingDynamicsRecorder()])
    with pytest.raises(ValueError, match="MLCTrainer does not record per-sample statistics"):
        mlc.train()
    assert mlc.state.global_step == 0


def test_recorder_reused_under_a_plain_trainer_still_refuses(tmp_path):
    """A recorder that already served a LiLAW run is not left 'begun' for the next trainer."""
    from transformers import Trainer, TrainingArguments

    from hf_lilaw import CrossEntropy

    recorder = TrainingDynamicsRecorder()
    frozen_trainer(tmp_path, blobs(48, seed=5), recorder).train()
    assert recorder.dynamics.num_epochs == 3
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=16,
                             report_to=[], save_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=TinyNet(), args=args, train_dataset=blobs(64), compute_loss_func=CrossEntropy(),
                      callbacks=[recorder])
    with pytest.raises(ValueError, match="this trainer hands it none"):
        trainer.train()


def test_elr_run_with_lambda_zero_records_plain_cross_entropy(tmp_path):
    """The one-run prune's detection run: ELRTrainer with elr_lambda=0 records every epoch's per-sample CE loss of
    the model as it is (learning rate 0 freezes it), and no LiLAW weights."""
    from hf_lilaw import ELRConfig, ELRTrainer

    train = blobs(80, seed=7)
    recorder = TrainingDynamicsRecorder()
    torch.manual_seed(0)
    model = TinyNet()
    args = ELRConfig(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=2, learning_rate=0.0,
                     save_strategy="no", report_to=[], disable_tqdm=True, elr_lambda=0.0)
    ELRTrainer(model=model, args=args, train_dataset=train, callbacks=[recorder]).train()
    dynamics = recorder.dynamics
    assert (dynamics.num_epochs, dynamics.num_samples) == (2, 80) and dynamics.w_alpha is None
    with torch.no_grad():
        logits = model(torch.tensor(train["x"]))["logits"]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(train["label"]), reduction="none").numpy()
    for epoch in range(2):
        np.testing.assert_allclose(dynamics.loss[epoch], expected, rtol=1e-5)


def saving_run(tmp_path, *, epochs, recorder, callbacks=(), **overrides):
    """A LiLAW run of 96 rows, 6 steps an epoch, that learns and saves checkpoints in tmp_path."""
    torch.manual_seed(0)
    args = LiLAWConfig(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=epochs,
                       learning_rate=0.05, report_to=[], disable_tqdm=True, lilaw_warmup_steps=0, **overrides)
    return LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(96, seed=4), meta_dataset=blobs(32, seed=9),
                        callbacks=[recorder, *callbacks])


def recorded_epochs(dynamics):
    return [epoch for epoch in range(dynamics.num_epochs) if not np.isnan(dynamics.loss[epoch]).all()]


def test_a_resumed_run_keeps_the_epochs_recorded_before_its_checkpoint(tmp_path):
    """Training one more epoch from the last checkpoint replaced training_dynamics.npz by a file of that epoch only."""
    path = tmp_path / DYNAMICS_FILE_NAME
    saving_run(tmp_path, epochs=2, recorder=TrainingDynamicsRecorder(output_dir=str(tmp_path)),
               save_strategy="epoch").train()
    before = TrainingDynamics.load(path)
    recorder = TrainingDynamicsRecorder(output_dir=str(tmp_path))
    saving_run(tmp_path, epochs=3, recorder=recorder, save_strategy="epoch").train(resume_from_checkpoint=True)
    after = TrainingDynamics.load(path)
    assert recorded_epochs(before) == [0, 1] and recorded_epochs(after) == [0, 1, 2]
    for name in ("loss", "margin", "w_alpha"):
        np.testing.assert_array_equal(getattr(after, name)[:2], getattr(before, name))
    np.testing.assert_array_equal(recorder.dynamics.loss, after.loss)  # in memory as in the file


def test_a_run_resumed_mid_epoch_records_what_the_uninterrupted_run_did(tmp_path):
    """From checkpoint-9 (epoch 1.5): epoch 0 and the rows of epoch 1 trained before the checkpoint come from the
    file, the rest from the resumed run, which continues the uninterrupted one exactly."""
    path = tmp_path / DYNAMICS_FILE_NAME
    saving_run(tmp_path, epochs=2, recorder=TrainingDynamicsRecorder(output_dir=str(tmp_path)),
               save_strategy="steps", save_steps=3).train()
    uninterrupted = TrainingDynamics.load(path)
    saving_run(tmp_path, epochs=2, recorder=TrainingDynamicsRecorder(output_dir=str(tmp_path)),
               save_strategy="steps", save_steps=3).train(resume_from_checkpoint=str(tmp_path / "checkpoint-9"))
    resumed = TrainingDynamics.load(path)
    for name in ("prob_label", "loss", "correct", "w_alpha", "w_beta", "w_delta"):
        np.testing.assert_allclose(getattr(resumed, name), getattr(uninterrupted, name), rtol=1e-6)


def test_a_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_record(tmp_path):
    """The record was written only when training ended: a run killed after checkpoint-9 (epoch 1.5) left no file,
    and the resumed run's record had NaN for all of epoch 0 and half of epoch 1."""
    saving_run(tmp_path / "full", epochs=2, recorder=TrainingDynamicsRecorder(output_dir=str(tmp_path / "full")),
               save_strategy="steps", save_steps=3).train()
    uninterrupted = TrainingDynamics.load(tmp_path / "full" / DYNAMICS_FILE_NAME)
    run = tmp_path / "killed"
    trainer = saving_run(run, epochs=2, recorder=TrainingDynamicsRecorder(output_dir=str(run)), save_strategy="steps",
                         save_steps=3, callbacks=[KillAfter(9)])
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert recorded_epochs(TrainingDynamics.load(run / DYNAMICS_FILE_NAME)) == [0, 1]  # saved at each checkpoint
    assert sorted(os.listdir(run)) == ["checkpoint-3", "checkpoint-6", "checkpoint-9", DYNAMICS_FILE_NAME]
    recorder = TrainingDynamicsRecorder(output_dir=str(run))
    saving_run(run, epochs=2, recorder=recorder, save_strategy="steps", save_steps=3).train(resume_from_checkpoint=True)
    resumed = TrainingDynamics.load(run / DYNAMICS_FILE_NAME)
    assert not np.isnan(resumed.loss).any()
    for name in ("prob_label", "prob_max", "margin", "el2n", "loss", "correct", "w_alpha", "w_beta", "w_delta"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(uninterrupted, name))
        np.testing.assert_array_equal(getattr(recorder.dynamics, name), getattr(uninterrupted, name))


def test_a_resumed_run_refuses_a_dynamics_file_that_is_not_its_own(tmp_path):
    saving_run(tmp_path, epochs=1, recorder=TrainingDynamicsRecorder(), save_strategy="epoch").train()
    other = TrainingDynamics.empty(5)
    other.record(np.arange(5), {"loss": np.ones(5)}, epoch=0)
    other.save(tmp_path / DYNAMICS_FILE_NAME)
    trainer = saving_run(tmp_path, epochs=2, recorder=TrainingDynamicsRecorder(output_dir=str(tmp_path)),
                         save_strategy="epoch")
    with pytest.raises(ValueError, match=r"holds the training dynamics of 5 sample ids, with LiLAW weights; this "
                                         r"resumed run records 96, with: it is not this run's record.*Move it"):
        trainer.train(resume_from_checkpoint=True)
    assert trainer.state.global_step == 6  # refused before its first step
    np.testing.assert_array_equal(TrainingDynamics.load(tmp_path / DYNAMICS_FILE_NAME).loss, other.loss)


@pytest.mark.parametrize("resumed_at, epoch_1", [(1.5, [1, 1, 5, 5]), (1.0, [np.nan, np.nan, 5, 5])])
def test_a_resumed_record_takes_the_file_epochs_before_its_checkpoint_only(tmp_path, resumed_at, epoch_1):
    """Epoch 2 of the file belongs to the continuation the resume replaces; epoch 1 is the file's where the resumed
    run has not seen a row again, and only when the checkpoint was saved inside it."""
    earlier = TrainingDynamics.empty(4, weights=False)
    for epoch in range(3):
        earlier.record(np.arange(4), {"loss": np.ones(4)}, epoch=epoch)
    earlier.save(tmp_path / DYNAMICS_FILE_NAME)
    recorder = TrainingDynamicsRecorder(output_dir=str(tmp_path))
    recorder.begin(4, weights=False)  # as the trainer does, then Trainer's hooks with the checkpoint's state
    recorder.on_train_begin(None, types.SimpleNamespace(global_step=9, epoch=resumed_at), None)
    recorder.record(torch.tensor([2, 3]), {"loss": torch.full((2,), 5.0)}, epoch=1)
    recorder.on_train_end(None, types.SimpleNamespace(is_world_process_zero=True, global_step=12), None)
    np.testing.assert_array_equal(TrainingDynamics.load(tmp_path / DYNAMICS_FILE_NAME).loss, [[1, 1, 1, 1], epoch_1])


@pytest.mark.parametrize("saved_at, epoch_1", [(9, [1, 1, 5, np.nan]), (11, [5, 1, 5, np.nan])])
def test_a_file_saved_at_the_checkpoint_keeps_its_first_visits_of_that_epoch(tmp_path, saved_at, epoch_1):
    """Under several processes the resumed run meets again, as padding of an uneven last batch, rows the file saw
    before a mid-epoch checkpoint; a file saved at a later step may hold visits the resume replaces."""
    recorder = TrainingDynamicsRecorder(output_dir=str(tmp_path))
    recorder.start(4, weights=False)
    recorder.record(np.arange(4), {"loss": np.ones(4)}, epoch=0)
    recorder.record(np.array([0, 1]), {"loss": np.ones(2)}, epoch=1)
    recorder.on_train_end(None, types.SimpleNamespace(is_world_process_zero=True, global_step=saved_at), None)
    recorder.begin(4, weights=False)
    recorder.on_train_begin(None, types.SimpleNamespace(global_step=9, epoch=1.5), None)
    recorder.record(torch.tensor([2, 0]), {"loss": torch.full((2,), 5.0)}, epoch=1)  # row 0: a padded copy
    recorder.on_train_end(None, types.SimpleNamespace(is_world_process_zero=True, global_step=12), None)
    np.testing.assert_array_equal(TrainingDynamics.load(tmp_path / DYNAMICS_FILE_NAME).loss, [[1, 1, 1, 1], epoch_1])


def test_a_sample_recorded_twice_in_an_epoch_keeps_its_first_visit():
    # The distributed sampler pads an uneven last batch with the epoch's first rows, on the same process too.
    recorder = TrainingDynamicsRecorder()
    recorder.start(4, weights=False)
    recorder.record(torch.tensor([2, 0]), {"loss": torch.tensor([0.5, 0.25])}, epoch=0)
    recorder.record(torch.tensor([1, 2, 2]), {"loss": torch.tensor([1.0, 9.0, 8.0])}, epoch=0)
    recorder.record(torch.tensor([2]), {"loss": torch.tensor([3.0])}, epoch=1)
    np.testing.assert_array_equal(recorder.dynamics.loss, [[0.25, 1.0, 0.5, np.nan], [np.nan, np.nan, 3.0, np.nan]])


def test_the_recorder_saves_its_file_uncompressed_at_checkpoints_and_at_the_end(tmp_path):
    """zlib over the record of epochs × samples took hundreds of times as long as the write, at every checkpoint,
    for a file about a quarter smaller: the recorder writes it stored; `TrainingDynamics.save` still compresses by
    default."""
    import zipfile

    class AtCheckpoint(TrainerCallback):  # after the recorder's on_save: the file as the checkpoint left it
        def __init__(self):
            self.methods = []

        def on_save(self, args, state, control, **kwargs):
            with zipfile.ZipFile(tmp_path / "dyn" / DYNAMICS_FILE_NAME) as archive:
                self.methods.append({info.compress_type for info in archive.infolist()})

    recorder = TrainingDynamicsRecorder(output_dir=str(tmp_path / "dyn"))
    checkpoint = AtCheckpoint()
    trainer = saving_run(tmp_path, epochs=2, recorder=recorder, save_strategy="epoch", callbacks=[checkpoint])
    trainer.train()
    assert checkpoint.methods == [{zipfile.ZIP_STORED}, {zipfile.ZIP_STORED}]
    path = tmp_path / "dyn" / DYNAMICS_FILE_NAME
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    saved = TrainingDynamics.load(path)
    for name in ("prob_label", "margin", "w_alpha"):
        np.testing.assert_array_equal(getattr(saved, name), getattr(recorder.dynamics, name))
    assert recorder.dynamics.num_epochs == 2 and not np.isnan(saved.prob_label).all()
    saved.save(tmp_path / "copy.npz")
    with zipfile.ZipFile(tmp_path / "copy.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    np.testing.assert_array_equal(TrainingDynamics.load(tmp_path / "copy.npz").loss, saved.loss)


def test_the_recorder_copies_a_batch_to_the_host_once_with_the_same_values(monkeypatch):
    """Each statistic went to the host on its own: 10 device syncs per micro-batch (9 statistics and the ids)."""
    from hf_lilaw.functional.statistics import per_sample_statistics

    torch.manual_seed(0)
    logits, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, -100, 1, 0])
    stats = per_sample_statistics(logits, labels, alpha=torch.tensor(9.5), beta=torch.tensor(2.0), delta=torch.tensor(6.0))
    ids = torch.tensor([5, 1, 0, 3, 2, 4])
    reference = TrainingDynamics.empty(8)
    reference.record(ids, stats, epoch=0)  # statistic by statistic
    copies = []
    original = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: copies.append(tuple(self.shape)) or original(self, *a, **k))
    recorder = TrainingDynamicsRecorder()
    recorder.start(8, weights=True)
    recorder.record(ids, stats, epoch=0)
    assert copies == [(6,), (9, 6)]  # the ids, then the statistics at once
    for name in (*stats,):
        np.testing.assert_array_equal(getattr(recorder.dynamics, name), getattr(reference, name))
    assert np.isnan(recorder.dynamics.loss[0, 3]) and np.isnan(recorder.dynamics.loss[0, 6:]).all()
