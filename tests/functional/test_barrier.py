"""The pure math of meta label correction, against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_lilaw.functional.barrier import (
    alignment_barrier_coefficient,
    dynamic_barrier_coefficient,
    flat_dot,
    lower_loss,
    mixture_upper_loss,
    soft_cross_entropy,
)

t = torch.tensor


def test_flat_dot_spans_all_tensors():
    assert flat_dot([t([1.0, 2.0]), t([[3.0]])], [t([4.0, 5.0]), t([[6.0]])]).item() == 4 + 10 + 18


def test_dynamic_barrier_positive():
    # ‖∇q‖² = 1 + 1 = 2, ⟨∇f, ∇q⟩ = 1·0 + 0·1 + (−1)·1 = −1, λ = (0.5·2 − (−1)) / 2 = 1.
    grad_f = [t([1.0, 0.0]), t([-1.0])]
    grad_q = [t([0.0, 1.0]), t([1.0])]
    lam = dynamic_barrier_coefficient(grad_f=grad_f, grad_q=grad_q, eta=0.5)
    assert lam.item() == pytest.approx(1.0, rel=1e-6)


def test_dynamic_barrier_clamps_to_zero():
    # ⟨∇f, ∇q⟩ = 2 > φ = 0.5·2: ∇f already decreases q fast enough.
    grad_f = [t([1.0, 0.0]), t([2.0])]
    grad_q = [t([0.0, 1.0]), t([1.0])]
    assert dynamic_barrier_coefficient(grad_f=grad_f, grad_q=grad_q, eta=0.5).item() == 0.0


def test_dynamic_barrier_finite_for_zero_grad_q():
    lam = dynamic_barrier_coefficient(grad_f=[t([1.0, 2.0])], grad_q=[t([0.0, 0.0])], eta=0.5)
    assert torch.isfinite(lam) and lam.item() == 0.0


def test_alignment_barrier_positive():
    # ‖∇q‖² = (9 + 1) + 4 = 14 over both blocks; ⟨∇_w q, ∇_w f⟩ = 3 − 2 = 1 over the main block only;
    # λ = 0.5 · (0.25·14 − 1) / 14 = 0.5 · 2.5 / 14.
    lam = alignment_barrier_coefficient(
        grad_f_main=[t([1.0, -2.0])],
        grad_q_main=[t([3.0, 1.0])],
        grad_q_meta=[t([0.0, 2.0])],
        threshold=0.25,
        scale=0.5,
    )
    assert lam.item() == pytest.approx(0.5 * 2.5 / 14, rel=1e-6)


def test_alignment_barrier_clamps_to_zero():
    # ⟨∇_w q, ∇_w f⟩ = 6 + 1 = 7 > δ_b·‖∇q‖² = 3.5.
    lam = alignment_barrier_coefficient(
        grad_f_main=[t([2.0, 1.0])],
        grad_q_main=[t([3.0, 1.0])],
        grad_q_meta=[t([0.0, 2.0])],
        threshold=0.25,
        scale=0.5,
    )
    assert lam.item() == 0.0


def test_alignment_barrier_meta_block_only_in_norm():
    # Doubling the meta block of ∇q changes only the norm: 9+1+16 = 26, λ = 0.5·(0.25·26 − 1)/26.
    lam = alignment_barrier_coefficient(
        grad_f_main=[t([1.0, -2.0])],
        grad_q_main=[t([3.0, 1.0])],
        grad_q_meta=[t([0.0, 4.0])],
        threshold=0.25,
        scale=0.5,
    )
    assert lam.item() == pytest.approx(0.5 * (6.5 - 1) / 26, rel=1e-6)


def _ce(logits: list[float], label: int) -> float:
    return -logits[label] + math.log(sum(math.exp(v) for v in logits))


def test_mixture_upper_loss_log_probs_by_hand():
    z, p, rho = [2.0, 0.0, -1.0], [0.7, 0.2, 0.1], 0.2
    mixed = [rho * zi + (1 - rho) * math.log(pi) for zi, pi in zip(z, p)]
    loss = mixture_upper_loss(t([z]), torch.log(t([p])), t([0]), rho=rho)
    assert loss.item() == pytest.approx(_ce(mixed, 0), rel=1e-6)


def test_mixture_upper_loss_probs_space_by_hand():
    z, p, rho = [2.0, 0.0, -1.0], [0.7, 0.2, 0.1], 0.2
    mixed = [rho * zi + (1 - rho) * pi for zi, pi in zip(z, p)]
    loss = mixture_upper_loss(t([z]), torch.log(t([p])), t([2]), rho=rho, space="probs")
    assert loss.item() == pytest.approx(_ce(mixed, 2), rel=1e-6)


def test_mixture_upper_loss_limits():
    torch.manual_seed(0)
    z, meta_logits, y = torch.randn(5, 4), torch.randn(5, 4), torch.randint(0, 4, (5,))
    log_p = meta_logits.log_softmax(-1)
    assert mixture_upper_loss(z, log_p, y, rho=1.0).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-6)
    assert mixture_upper_loss(z, log_p, y, rho=0.0).item() == pytest.approx(F.nll_loss(log_p, y).item(), rel=1e-6)
    with pytest.raises(ValueError, match="space"):
        mixture_upper_loss(z, log_p, y, rho=0.5, space="logits")


def test_soft_cross_entropy_matches_hard_ce_for_one_hot():
    torch.manual_seed(0)
    z, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    assert soft_cross_entropy(z, F.one_hot(y, 3).float()).item() == pytest.approx(F.cross_entropy(z, y).item())


def test_lower_loss_weights_noisy_and_clean_terms():
    torch.manual_seed(0)
    zn, soft = torch.randn(4, 3), torch.softmax(torch.randn(4, 3), -1)
    zc, yc = torch.randn(2, 3), t([0, 2])
    noisy, clean = soft_cross_entropy(zn, soft).item(), F.cross_entropy(zc, yc).item()
    both = lower_loss(zn, soft, zc, yc, weights=(1.0, 0.5)).item()
    assert both == pytest.approx((noisy + 0.5 * clean) / 1.5, rel=1e-6)
    assert lower_loss(zn, soft, weights=(1.0, 0.5)).item() == pytest.approx(noisy)
    assert lower_loss(zn, soft, zc, yc, weights=(1.0, 0.0)).item() == pytest.approx(noisy)
