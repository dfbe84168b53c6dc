import pytest
import torch
import torch.nn.functional as F

from hf_lilaw.functional import lilaw_meta_update, lilaw_weights
from hf_lilaw.functional.lilaw_step import BaseLossSettings, guarded_meta_update, meta_gradient, training_loss_terms

PARAMS = torch.tensor([10.0, 2.0, 6.0])
CE = BaseLossSettings()


def _batch(seed: int = 0, rows: int = 24, classes: int = 5, ignored: bool = True):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(rows, classes, generator=generator)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    if ignored:
        labels[::5] = -100
    return logits, labels


def _reference(logits, labels, detach=False):
    """W · CE through autograd on the public pieces, with the sums LiLAWTrainer logs."""
    probs = logits.float().softmax(-1)
    weights = lilaw_weights(probs.detach() if detach else probs, labels.clamp_min(0), alpha=10.0, beta=2.0, delta=6.0)
    losses = F.cross_entropy(logits, labels, reduction="none", ignore_index=-100)
    mask = labels != -100
    sums = [weights.w_alpha[mask].sum(), weights.w_beta[mask].sum(), weights.w_delta[mask].sum(), weights.total[mask].sum()]
    return weights.total * losses, torch.stack(sums + [mask.sum().float()]).detach()


@pytest.mark.parametrize("detach", [False, True])
def test_training_loss_terms_equal_autograd_through_the_weights(detach):
    logits, labels = _batch()
    z1, z2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    losses, sums = training_loss_terms(z1, labels, PARAMS, loss=CE, detach_weights=detach)
    expected, expected_sums = _reference(z2, labels, detach)
    torch.testing.assert_close(losses, expected, rtol=0, atol=0)
    torch.testing.assert_close(sums, expected_sums, rtol=1e-6, atol=1e-6)
    assert losses[labels == -100].eq(0).all() and sums[-1] == (labels != -100).sum()
    (g1,) = torch.autograd.grad(losses.sum(), z1)
    (g2,) = torch.autograd.grad(expected.sum(), z2)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


def test_training_loss_terms_unweighted_during_warmup():
    logits, labels = _batch()
    losses, _ = training_loss_terms(logits, labels, PARAMS, loss=CE, weighted=False, label_smoothing=0.1)
    torch.testing.assert_close(
        losses, F.cross_entropy(logits, labels, reduction="none", ignore_index=-100, label_smoothing=0.1)
    )


def test_meta_gradient_equals_autograd():
    logits, labels = _batch(ignored=False)
    params = PARAMS.clone().requires_grad_(True)
    weights = lilaw_weights(logits.softmax(-1), labels, alpha=params[0], beta=params[1], delta=params[2])
    meta_loss = (weights.total * F.cross_entropy(logits, labels, reduction="none")).mean()
    (expected,) = torch.autograd.grad(meta_loss, params)
    with torch.no_grad():  # as in the trainer's meta step
        grad = meta_gradient(logits, labels, PARAMS, loss=CE)
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)


def test_guarded_meta_update_skips_non_finite_gradients():
    lr, wd = torch.full((3,), 0.5), torch.full((3,), 1e-4)
    grad = torch.tensor([0.3, -0.2, 0.1])
    params, skipped = guarded_meta_update(PARAMS, grad, torch.tensor(2), lr=lr, weight_decay=wd)
    torch.testing.assert_close(params, lilaw_meta_update(PARAMS, grad, lr=lr, weight_decay=wd), rtol=0, atol=0)
    assert skipped == 2
    params, skipped = guarded_meta_update(PARAMS, torch.tensor([0.3, float("nan"), 0.1]), skipped, lr=lr, weight_decay=wd)
    assert torch.equal(params, PARAMS) and skipped == 3


def test_a_meta_batch_without_labelled_rows_is_skipped_not_decayed():
    logits, labels = _batch()
    lr, wd = torch.full((3,), 0.5), torch.full((3,), 1e-4)
    # The trainer masks -100 rows out before the meta gradient: a batch of only such rows arrives empty.
    grad = meta_gradient(logits[:0], labels[:0], PARAMS, loss=CE)
    assert grad.isnan().all()  # a mean over no rows: before, a zero gradient and a weight-decay-only step
    params, skipped = guarded_meta_update(PARAMS, grad, torch.tensor(0), lr=lr, weight_decay=wd)
    assert torch.equal(params, PARAMS) and skipped == 1
    assert meta_gradient(logits[:1], labels[:1].clamp_min(0), PARAMS, loss=CE).isfinite().all()  # one row: a step


def test_compiled_step_math_equals_eager():
    logits, labels = _batch(seed=3, rows=32)
    compiled_terms = torch.compile(training_loss_terms)
    compiled_gradient = torch.compile(meta_gradient)
    z1, z2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    eager, eager_sums = training_loss_terms(z1, labels, PARAMS, loss=CE)
    fused, fused_sums = compiled_terms(z2, labels, PARAMS, loss=CE)
    torch.testing.assert_close(fused, eager, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(fused_sums, eager_sums, rtol=1e-6, atol=1e-6)
    (g1,) = torch.autograd.grad(eager.sum(), z1)
    (g2,) = torch.autograd.grad(fused.sum(), z2)
    # Fused kernels round differently (dynamic-shape ones too, once another test has compiled these functions for
    # another batch size): gradients of ~1e-2 agree to a few 1e-7.
    torch.testing.assert_close(g2, g1, rtol=1e-5, atol=1e-6)
    meta_logits, meta_labels = _batch(seed=4, rows=32, ignored=False)
    torch.testing.assert_close(
        compiled_gradient(meta_logits, meta_labels, PARAMS, loss=CE),
        meta_gradient(meta_logits, meta_labels, PARAMS, loss=CE),
        rtol=1e-5,
        atol=1e-8,
    )
