import math

import pytest
import torch

from hf_lilaw.functional import lilaw_meta_gradient, lilaw_meta_update, lilaw_weights, per_sample_loss

PROBS = [[0.95, 0.05], [0.60, 0.40], [0.40, 0.60], [0.05, 0.95]]
# The paper's Table 5 recomputed from its equations (docs/lilaw.md): (W_α, W_δ, W_β, W, W·CE) for label 0.
TABLE5_9_3_7 = [
    (0.999, 0.000, 0.130, 1.129, 0.058),
    (0.992, 0.002, 0.231, 1.225, 0.626),
    (0.953, 0.089, 0.354, 1.396, 1.279),
    (0.378, 0.835, 0.690, 1.903, 5.700),
]
TABLE5_10_2_6_RECOMPUTED = [
    (1.000, 0.000, 0.279, 1.279, 0.066),
    (0.996, 0.011, 0.354, 1.361, 0.695),
    (0.968, 0.198, 0.450, 1.616, 1.481),
    (0.389, 0.810, 0.701, 1.899, 5.690),
]


@pytest.mark.parametrize(
    ("params", "table"), [((9.0, 3.0, 7.0), TABLE5_9_3_7), ((10.0, 2.0, 6.0), TABLE5_10_2_6_RECOMPUTED)]
)
def test_table5(params, table):
    probs = torch.tensor(PROBS)
    labels = torch.zeros(4, dtype=torch.long)
    alpha, beta, delta = params
    w = lilaw_weights(probs, labels, alpha=alpha, beta=beta, delta=delta)
    ce = -torch.log(probs[:, 0])
    for i, (wa, wd, wb, total, weighted_ce) in enumerate(table):
        assert w.w_alpha[i].item() == pytest.approx(wa, abs=6e-4)
        assert w.w_delta[i].item() == pytest.approx(wd, abs=6e-4)
        assert w.w_beta[i].item() == pytest.approx(wb, abs=6e-4)
        # The table's W is the sum of its three rounded weights: up to three half-units of rounding.
        assert w.total[i].item() == pytest.approx(total, abs=1.5e-3)
        assert (w.total[i] * ce[i]).item() == pytest.approx(weighted_ce, abs=1.5e-3 * max(1.0, ce[i].item()))


def test_float32_whatever_the_input_dtype():
    probs = torch.tensor(PROBS, dtype=torch.bfloat16)
    w = lilaw_weights(probs, torch.zeros(4, dtype=torch.long), alpha=10.0, beta=2.0, delta=6.0)
    assert all(t.dtype == torch.float32 for t in w)
    ref = lilaw_weights(probs.float(), torch.zeros(4, dtype=torch.long), alpha=10.0, beta=2.0, delta=6.0)
    torch.testing.assert_close(w.total, ref.total)


def test_differentiable_in_probs_and_scalars():
    probs = torch.tensor(PROBS, requires_grad=True)
    params = torch.tensor([10.0, 2.0, 6.0], requires_grad=True)
    w = lilaw_weights(probs, torch.zeros(4, dtype=torch.long), alpha=params[0], beta=params[1], delta=params[2])
    w.total.sum().backward()
    assert probs.grad is not None and probs.grad.abs().sum() > 0
    assert params.grad is not None and torch.all(params.grad != 0)


def test_gradient_signs_of_appendix_a2():
    # Random meta batches of every kind: dL/dα >= 0 and dL/dβ <= 0 always; δ free (both signs occur).
    torch.manual_seed(0)
    delta_signs = set()
    for _ in range(50):
        logits = torch.randn(32, 5) * 3
        labels = torch.randint(0, 5, (32,))
        params = torch.tensor([10.0, 2.0, 6.0]) * torch.empty(3).uniform_(0.5, 1.5)
        params[0] = params[0].clamp_min(1)
        params[2] = torch.maximum(params[2], params[1])
        losses = per_sample_loss(logits, labels)
        grad = lilaw_meta_gradient(logits.softmax(-1), labels, losses, params)
        assert grad[0] >= 0
        assert grad[1] <= 0
        delta_signs.add(bool(grad[2] > 0))
    assert delta_signs == {True, False}


def _appendix_a2(probs, labels, losses, params):
    """The meta gradient written out (appendix A.2): a mean over the batch of elementwise terms."""
    a, b, d = params
    s = probs.gather(1, labels.unsqueeze(1)).squeeze(1)
    m = probs.max(1).values
    sig = torch.sigmoid
    d_alpha = (sig(a * s - m) * (1 - sig(a * s - m)) * s * losses).mean()
    d_beta = (-sig(-(b * s - m)) * (1 - sig(-(b * s - m))) * s * losses).mean()
    d_delta = (-torch.exp(-((d * s - m) ** 2) / 2) * (d * s - m) * s * losses).mean()
    return torch.stack([d_alpha, d_beta, d_delta])


def test_meta_gradient_matches_closed_form():
    probs = torch.tensor(PROBS)
    labels = torch.zeros(4, dtype=torch.long)
    losses = -torch.log(probs[:, 0])
    params = torch.tensor([10.0, 2.0, 6.0])
    grad = lilaw_meta_gradient(probs, labels, losses, params)
    torch.testing.assert_close(grad, _appendix_a2(probs, labels, losses, params))


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0, 30.0])
def test_meta_gradient_matches_closed_form_on_random_batches(scale):
    # Random batch sizes, class counts and α, β, δ; logits from nearly uniform (0.1) to saturated (30).
    generator = torch.Generator().manual_seed(int(scale * 10))
    for _ in range(50):
        batch = int(torch.randint(1, 130, (), generator=generator))
        classes = int(torch.randint(2, 40, (), generator=generator))
        logits = torch.randn(batch, classes, generator=generator) * scale
        labels = torch.randint(0, classes, (batch,), generator=generator)
        params = torch.tensor([10.0, 2.0, 6.0]) * torch.empty(3).uniform_(0.3, 2.0, generator=generator)
        losses = per_sample_loss(logits, labels)
        probs = logits.softmax(-1)
        grad = lilaw_meta_gradient(probs, labels, losses, params)
        assert grad.dtype == torch.float32 and grad.shape == (3,)
        torch.testing.assert_close(grad, _appendix_a2(probs, labels, losses, params), rtol=1e-5, atol=1e-9)


def test_meta_gradient_under_no_grad_takes_low_precision_probs_and_keeps_params_untouched():
    logits = torch.randn(16, 7, generator=torch.Generator().manual_seed(1)) * 4
    labels = torch.arange(16) % 7
    losses = per_sample_loss(logits, labels)
    params = torch.tensor([10.0, 2.0, 6.0], requires_grad=True)
    probs = logits.softmax(-1).bfloat16()
    with torch.no_grad():  # as in the trainer's meta step
        grad = lilaw_meta_gradient(probs, labels, losses, params)
    expected = _appendix_a2(probs.float(), labels, losses, params.detach())
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-9)
    assert not grad.requires_grad and params.grad is None


def test_meta_update_sgd_with_weight_decay_and_constraints():
    params = torch.tensor([10.0, 2.0, 6.0])
    lr = torch.full((3,), 0.005)
    wd = torch.full((3,), 1e-4)
    grad = torch.tensor([1.0, -2.0, 0.5])
    new = lilaw_meta_update(params, grad, lr=lr, weight_decay=wd)
    expected = params - lr * (grad + wd * params)
    torch.testing.assert_close(new, expected)
    # α is clamped to 1, δ to β.
    clamped = lilaw_meta_update(torch.tensor([1.0, 5.0, 5.0]), torch.tensor([100.0, -100.0, 100.0]), lr=lr, weight_decay=wd)
    assert clamped[0].item() == 1.0
    assert clamped[2].item() == pytest.approx(clamped[1].item())
    assert clamped[1].item() == pytest.approx(5.0 + 0.5 - 0.005 * 1e-4 * 5.0)


def test_per_sample_loss_ignore_index_focal_and_smoothing():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, -100])
    ce = per_sample_loss(logits, labels)
    assert ce[2].item() == 0.0
    assert ce[0].item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    focal = per_sample_loss(logits, labels, kind="focal", focal_gamma=2.0)
    p0 = 1 / (1 + math.exp(-2))
    assert focal[0].item() == pytest.approx((1 - p0) ** 2 * ce[0].item(), rel=1e-5)
    assert focal[2].item() == 0.0
    smooth = per_sample_loss(logits, labels, label_smoothing=0.1)
    assert smooth[0].item() > ce[0].item()
    with pytest.raises(ValueError, match="cross_entropy"):
        per_sample_loss(logits, labels, kind="mse")  # type: ignore[arg-type]


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"\(batch, num_classes\)"):
        lilaw_weights(torch.ones(3), torch.zeros(3, dtype=torch.long), alpha=10, beta=2, delta=6)
    with pytest.raises(ValueError, match="labels must have shape"):
        lilaw_weights(torch.ones(3, 2), torch.zeros(2, dtype=torch.long), alpha=10, beta=2, delta=6)


def test_meta_loss_is_the_mean_weighted_loss_of_table5():
    from hf_lilaw.functional.weighting import lilaw_meta_loss

    probs = torch.tensor(PROBS)
    ce = -torch.log(probs[:, 0])
    loss = lilaw_meta_loss(probs, torch.zeros(4, dtype=torch.long), ce, torch.tensor([9.0, 3.0, 7.0]))
    assert loss.item() == pytest.approx(sum(row[4] for row in TABLE5_9_3_7) / 4, abs=1.5e-3)
