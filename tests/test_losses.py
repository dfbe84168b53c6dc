"""hf_lilaw.losses: closed-form values, Trainer's reduction, gradient accumulation, and LiLAW on an SCE base."""

import math

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from hf_lilaw import LiLAWConfig, LiLAWTrainer
from hf_lilaw.losses import CrossEntropy, FocalLoss, GeneralizedCrossEntropy, SymmetricCrossEntropy, make_loss

from conftest import TinyNet

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [-1.0, 3.0, 0.0], [0.0, 1.0, 2.0]])
LABELS = torch.tensor([0, 2, -100, 1])


def p_label(row: int) -> float:
    z = LOGITS[row].tolist()
    return math.exp(z[int(LABELS[row])]) / sum(math.exp(v) for v in z)


LABELLED = [0, 1, 3]
CLOSED_FORMS = {
    "cross_entropy": (CrossEntropy(), lambda p: -math.log(p)),
    "focal": (FocalLoss(gamma=2.0), lambda p: -((1 - p) ** 2) * math.log(p)),
    "gce": (GeneralizedCrossEntropy(q=0.7), lambda p: (1 - p**0.7) / 0.7),
    "sce": (SymmetricCrossEntropy(alpha=0.1, beta=1.0), lambda p: -0.1 * math.log(p) - math.log(1e-4) * (1 - p)),
}


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_values_match_closed_forms_and_ignore_minus_100(name):
    loss, closed_form = CLOSED_FORMS[name]
    expected = [closed_form(p_label(i)) for i in LABELLED]
    per_sample = loss.per_sample(LOGITS, LABELS)
    assert per_sample[2] == 0
    torch.testing.assert_close(per_sample[LABELLED], torch.tensor(expected), rtol=1e-5, atol=1e-6)
    # mean over the 3 labelled rows; with num_items_in_batch, sum / that count (Trainer's convention)
    assert loss({"logits": LOGITS}, LABELS).item() == pytest.approx(sum(expected) / 3, rel=1e-5)
    assert loss((LOGITS,), LABELS, num_items_in_batch=torch.tensor(6)).item() == pytest.approx(sum(expected) / 6, rel=1e-5)
    assert make_loss(name)(LOGITS, LABELS).item() == pytest.approx(sum(expected) / 3, rel=1e-5)


def test_limits_focal_0_and_gce_near_0_are_cross_entropy():
    ce = CrossEntropy()(LOGITS, LABELS)
    assert FocalLoss(gamma=0.0)(LOGITS, LABELS).item() == pytest.approx(ce.item(), rel=1e-6)
    assert GeneralizedCrossEntropy(q=1e-4)(LOGITS, LABELS).item() == pytest.approx(ce.item(), rel=1e-3)
    # float32's 1 − p^q cancelled as q → 0: 0.6914 at q = 1e-5, 0.0 at q = 1e-8 for a CE of 0.693
    for q in (1e-5, 1e-7, 1e-8):
        assert GeneralizedCrossEntropy(q=q)(LOGITS, LABELS).item() == pytest.approx(ce.item(), rel=1e-4)


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_processes_sharing_num_items_add_up_to_the_full_batch(name):
    """What DDP with average_tokens_across_devices does: each process divides by the global count."""
    loss = CLOSED_FORMS[name][0]
    logits = torch.randn(32, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 5, (32,), generator=torch.Generator().manual_seed(1))
    full = loss(logits, labels)
    halves = loss(logits[:16], labels[:16], num_items_in_batch=32) + loss(logits[16:], labels[16:], num_items_in_batch=32)
    torch.testing.assert_close(halves, full)


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_a_step_of_unlabelled_rows_gives_zero_loss_and_a_finite_gradient(name):
    # num_items_in_batch 0 (every row of the optimizer step -100) made 0/0: NaN gradient, NaN model, loss logged 0
    logits = LOGITS.clone().requires_grad_()
    loss = CLOSED_FORMS[name][0](logits, torch.full((4,), -100), num_items_in_batch=torch.tensor(0))
    loss.backward()
    assert loss.item() == 0 and torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_an_evaluation_batch_of_unlabelled_rows_has_no_loss(name):
    # Without a graph 0/0 stays NaN, as torch's cross-entropy gives: Trainer then leaves the batch out of eval_loss
    # (a 0 averaged in made eval_loss depend on per_device_eval_batch_size).
    with torch.no_grad():
        assert CLOSED_FORMS[name][0](LOGITS, torch.full((4,), -100)).isnan()
        assert CLOSED_FORMS[name][0](LOGITS, LABELS).isfinite()


def test_focal_with_gamma_below_1_keeps_a_confident_rows_gradient_finite():
    # (1 − p)^γ has an infinite slope at p = 1 (float32 reaches it past a logit margin of about 17): 0 · ∞ = NaN
    logits = torch.tensor([[40.0, 0.0, 0.0], [0.5, 0.2, 0.1], [40.0, 0.0, 0.0]], requires_grad=True)
    loss = FocalLoss(gamma=0.5)(logits, torch.tensor([0, 1, -100]))
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1].abs().sum() > 0
    expected = -((1 - torch.softmax(logits[1].detach(), 0)[1]) ** 0.5) * torch.log_softmax(logits[1].detach(), 0)[1]
    assert loss.item() == pytest.approx(expected.item() / 2, rel=1e-5)


def test_negative_labels_other_than_minus_100_are_not_class_0():
    # GCE read -1 (datasets' "no label") as class 0 and trained on it; the other losses raise
    for loss in (GeneralizedCrossEntropy(), SymmetricCrossEntropy(), FocalLoss(), CrossEntropy()):
        with pytest.raises((IndexError, RuntimeError), match="out of bounds"):
            loss(LOGITS[:2], torch.tensor([-1, 1]))


def test_make_loss_names_what_gce_cannot_take():
    with pytest.raises(ValueError, match="gce has no cross-entropy term to smooth"):  # a bare TypeError before
        make_loss("gce", label_smoothing=0.1)
    assert repr(make_loss("gce", label_smoothing=0.0, q=0.5)) == repr(GeneralizedCrossEntropy(q=0.5))


def test_bad_options_and_inputs_name_the_fix():
    with pytest.raises(ValueError, match="q must be in"):
        GeneralizedCrossEntropy(q=0.0)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="Unknown loss"):
        make_loss("mae")
    with pytest.raises(ValueError, match="integer class indices"):
        CrossEntropy()(LOGITS, LABELS.float())
    with pytest.raises(ValueError, match="do not fit"):
        CrossEntropy()(LOGITS, LABELS[:2])
    with pytest.raises(ValueError, match="No logits"):
        CrossEntropy()({"loss": 1.0}, LABELS)
    with pytest.raises(TypeError):
        SymmetricCrossEntropy(0.1, 1.0)  # options are keyword-only


class GradientRecorder(TrainerCallback):
    def __init__(self):
        self.grads = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append(torch.cat([p.grad.flatten().clone() for p in model.parameters()]))


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_trainer_gradient_accumulation_2x8_equals_1x16(tmp_path, blob_splits, name):
    def run(batch_size, accumulation):
        torch.manual_seed(0)
        recorder = GradientRecorder()
        args = TrainingArguments(
            output_dir=str(tmp_path / f"{batch_size}x{accumulation}"), per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation, num_train_epochs=1, learning_rate=0.05, save_strategy="no",
            report_to=[], disable_tqdm=True, seed=0,
        )
        Trainer(model=TinyNet(), args=args, train_dataset=blob_splits["train"], compute_loss_func=make_loss(name),
                callbacks=[recorder]).train()
        return recorder.grads

    big, small = run(16, 1), run(8, 2)
    assert len(big) == len(small) == 12
    assert any(g.abs().sum() > 0 for g in big)
    for g_big, g_small in zip(big, small):
        torch.testing.assert_close(g_small, g_big, rtol=1e-4, atol=1e-6)


def test_lilaw_trainer_on_an_sce_base_loss_trains_and_moves_alpha(tmp_path, blob_splits):
    torch.manual_seed(0)
    args = LiLAWConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=3, learning_rate=0.05,
        save_strategy="no", report_to=[], disable_tqdm=True, seed=0, lilaw_base_loss="sce", lilaw_lr=0.5,
        lilaw_warmup_epochs=1,
    )
    trainer = LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blob_splits["train"], meta_dataset=blob_splits["meta"])
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert trainer.lilaw_parameters()["alpha"] != pytest.approx(10.0)
