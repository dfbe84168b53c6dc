import math

import pytest
import torch

from hf_lilaw.functional.elr import ELR_CLAMP, elr_loss, elr_probabilities, elr_target_update


def test_loss_and_update_by_hand():
    # Row 0: p = (1/4, 3/4), old target (1/2, 1/2). Row 1: p saturates and is clamped. Row 2: unlabelled.
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 30.0], [1.0, -1.0]])
    labels = torch.tensor([0, 1, -100])
    targets = torch.tensor([[0.5, 0.5], [0.0, 0.0], [0.2, 0.1]])
    terms = elr_loss(logits, labels, targets, elr_lambda=3.0, beta=0.7)

    t0 = [0.7 * 0.5 + 0.3 * 0.25, 0.7 * 0.5 + 0.3 * 0.75]  # (0.425, 0.575)
    p1 = [ELR_CLAMP, 1 - ELR_CLAMP]  # sums to 1: no renormalisation
    t1 = [0.3 * p1[0], 0.3 * p1[1]]
    torch.testing.assert_close(terms.targets, torch.tensor([t0, t1, [0.2, 0.1]]), rtol=1e-6, atol=1e-7)
    reg0 = math.log(1 - (0.25 * t0[0] + 0.75 * t0[1]))  # log(0.4625)
    reg1 = math.log(1 - (p1[0] * t1[0] + p1[1] * t1[1]))
    ce0, ce1 = math.log(4.0), math.log1p(math.exp(-30.0))  # CE on the raw logits, as the authors compute it
    torch.testing.assert_close(terms.reg, torch.tensor([reg0, reg1, 0.0]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(terms.ce, torch.tensor([ce0, ce1, 0.0]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(terms.loss, torch.tensor([ce0 + 3 * reg0, ce1 + 3 * reg1, 0.0]), rtol=1e-6, atol=1e-7)
    assert reg0 == pytest.approx(math.log(0.4625))


def test_clamped_probabilities_are_renormalised_in_the_update():
    p = elr_probabilities(torch.tensor([[0.0, 40.0, 40.0]]))  # (≈0, .5, .5) -> (1e-4, .5, .5): sums past 1
    torch.testing.assert_close(p, torch.tensor([[ELR_CLAMP, 0.5, 0.5]]))
    updated = elr_target_update(torch.zeros(1, 3), p, beta=0.9)
    torch.testing.assert_close(updated, 0.1 * p / (1 + ELR_CLAMP))
    assert updated.sum().item() == pytest.approx(0.1, rel=1e-6)  # a target's mass is 1 − β^visits


def test_gradient_flows_through_p_only_and_math_is_float32():
    logits = torch.randn(6, 4, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    targets = torch.rand(6, 4) / 4
    terms = elr_loss(logits, labels, targets, elr_lambda=2.0, beta=0.5)
    assert terms.loss.dtype == terms.targets.dtype == torch.float32
    assert not terms.targets.requires_grad
    # The regulariser's gradient in p is −λ·t / (1 − ⟨p, t⟩), with t the updated (constant) target.
    p = elr_probabilities(logits.detach()).requires_grad_(True)
    reg = torch.log1p(-(p * terms.targets).sum(-1))
    (grad,) = torch.autograd.grad(reg.sum(), p)
    expected = -terms.targets / (1 - (p.detach() * terms.targets).sum(-1, keepdim=True))
    torch.testing.assert_close(grad, expected)


def test_matches_a_loop_over_the_papers_equations_across_epochs():
    """Three epochs over 10 samples in shuffled batches: the running average and the mean loss of each batch,
    computed sample by sample in float64 from the paper's equations."""
    generator = torch.Generator().manual_seed(0)
    num_samples, num_classes, beta, lam = 10, 4, 0.7, 3.0
    labels = torch.randint(0, num_classes, (num_samples,), generator=generator)
    table = torch.zeros(num_samples, num_classes)
    reference = [[0.0] * num_classes for _ in range(num_samples)]
    for _ in range(3):
        order = torch.randperm(num_samples, generator=generator)
        for batch in order.split(4):
            logits = 4 * torch.randn(len(batch), num_classes, generator=generator)
            terms = elr_loss(logits, labels[batch], table[batch], elr_lambda=lam, beta=beta)
            table[batch] = terms.targets
            losses = []
            for row, i in enumerate(batch.tolist()):
                z = logits[row].double()
                p = [min(max(v, 1e-4), 1 - 1e-4) for v in z.softmax(0).tolist()]
                reference[i] = [beta * t + (1 - beta) * v / sum(p) for t, v in zip(reference[i], p)]
                inner = sum(v * t for v, t in zip(p, reference[i]))
                losses.append(-z.log_softmax(0)[labels[i]].item() + lam * math.log(1 - inner))
            assert terms.loss.mean().item() == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    torch.testing.assert_close(table, torch.tensor(reference, dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_cross_entropy_term_is_torchs_with_and_without_label_smoothing():
    generator = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(8, 5, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 4, -100, 1, 2])
    targets = torch.rand(8, 5, generator=generator) / 5
    plain = elr_loss(logits, labels, targets, elr_lambda=0.0, beta=0.7)
    assert torch.equal(plain.ce, torch.nn.functional.cross_entropy(logits, labels, reduction="none"))
    assert torch.equal(plain.loss, plain.ce)  # λ = 0 is cross-entropy, bit for bit
    smoothed = elr_loss(logits, labels, targets, elr_lambda=1.0, beta=0.7, label_smoothing=0.1)
    expected = torch.nn.functional.cross_entropy(logits, labels, reduction="none", label_smoothing=0.1)
    torch.testing.assert_close(smoothed.ce, expected, rtol=0, atol=0)
    torch.testing.assert_close(smoothed.reg, plain.reg, rtol=0, atol=0)
