"""The pieces every meta label correction step shares: the lower loss G and the gradient plumbing."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hf_lilaw.functional.mlc_bilevel import (
    MetaStepInputs,
    MetaStepResult,
    corrected_lower_loss,
    gradients,
    set_gradients,
    step_meta_model,
)

X_NOISY, Y_NOISY = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 1, 0])
X_CLEAN, Y_CLEAN = torch.randn(2, 3, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 0])
HEAD = nn.Linear(3, 2)
SOFT = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.7, 0.3]])


def forward(inputs, params=None):
    """Logits of a linear head; its input is the feature. Counts its calls."""
    forward.calls += 1
    x = inputs["x"]
    return HEAD(x) if params is None else x @ params["weight"].T + params["bias"], x


def meta_model(features, labels):
    return SOFT[: len(labels)]


def lower(weights, lower_batch=({"x": X_CLEAN}, Y_CLEAN), params=None, **kwargs):
    forward.calls = 0
    inputs = MetaStepInputs(net=HEAD, meta_model=meta_model, meta_optimizer=None, forward=forward,
                            noisy=({"x": X_NOISY}, Y_NOISY), upper=None, lower=lower_batch,
                            lower_loss_weights=weights)  # fmt: skip
    return corrected_lower_loss(inputs, params, **kwargs)


def test_lower_loss_weights_the_two_terms_by_batch_size_unless_told():
    noisy = -(SOFT * HEAD(X_NOISY).log_softmax(-1)).sum(-1).mean()
    clean = F.cross_entropy(HEAD(X_CLEAN), Y_CLEAN)
    torch.testing.assert_close(lower(None), (4 * noisy + 2 * clean) / 6)
    assert forward.calls == 2
    torch.testing.assert_close(lower([1.0, 3.0]), (noisy + 3 * clean) / 4)
    # Without the clean half (or with a zero clean weight) G is the soft CE alone, one forward.
    torch.testing.assert_close(lower([1.0, 0.0]), noisy)
    torch.testing.assert_close(lower(None, lower_batch=None), noisy)
    assert forward.calls == 1
    # with_clean=False keeps the noisy term's share of G: the same gradient in the meta model, one forward fewer.
    torch.testing.assert_close(lower(None, with_clean=False), noisy * 4 / 6)
    assert forward.calls == 1


def test_lower_loss_at_a_functional_copy_of_the_parameters():
    params = {"weight": 2 * HEAD.weight.detach(), "bias": torch.zeros(2)}
    logits_noisy, logits_clean = X_NOISY @ params["weight"].T, X_CLEAN @ params["weight"].T
    expected = (4 * -(SOFT * logits_noisy.log_softmax(-1)).sum(-1).mean() + 2 * F.cross_entropy(logits_clean, Y_CLEAN)) / 6
    torch.testing.assert_close(lower(None, params=params), expected)


def test_gradients_fill_unused_tensors_with_zeros_and_say_which_were_used():
    a, b = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([3.0], requires_grad=True)
    grads, used = gradients((a * a).sum(), [a, b])
    torch.testing.assert_close(grads[0], torch.tensor([2.0, 4.0]))
    assert torch.equal(grads[1], torch.zeros(1)) and used == [True, False]
    (g,), _ = gradients((a**3).sum(), [a], create_graph=True)
    assert g.requires_grad  # kept in the graph for a second-order product


def test_set_gradients_leaves_unused_parameters_without_a_gradient():
    p, q = nn.Parameter(torch.zeros(2, dtype=torch.bfloat16)), nn.Parameter(torch.zeros(1))
    q.grad = torch.ones(1)
    grad = torch.tensor([0.5, -1.0], requires_grad=True)
    set_gradients([p, q], [grad, torch.ones(1)], [True, False])
    assert p.grad.dtype == torch.bfloat16 and p.grad.tolist() == [0.5, -1.0] and not p.grad.requires_grad
    assert q.grad is None
    set_gradients([p], [grad.detach()], [True], copy=True)
    p.grad.mul_(2)  # the caller's tensor is untouched: a clipping optimizer works on a copy
    assert grad.tolist() == [0.5, -1.0]


def test_step_meta_model_steps_along_the_given_direction_and_clears_the_gradients():
    meta = nn.Linear(2, 1)
    before = [p.detach().clone() for p in meta.parameters()]
    direction = [torch.tensor([[1.0, -2.0]]), torch.tensor([4.0])]
    inputs = MetaStepInputs(net=None, meta_model=meta, meta_optimizer=torch.optim.SGD(meta.parameters(), lr=0.5),
                            forward=None, noisy=None, upper=None, lower=None)  # fmt: skip
    step_meta_model(inputs, direction)
    for p, b, d in zip(meta.parameters(), before, direction):
        torch.testing.assert_close(p.detach(), b - 0.5 * d)
        assert p.grad is None


@pytest.mark.parametrize(
    ("barrier", "keys"), [(None, ["upper_loss", "lower_loss"]), (3.0, ["lambda", "upper_loss", "lower_loss"])]
)
def test_step_result_metrics_name_what_the_trainer_logs(barrier, keys):
    result = MetaStepResult(lower_loss=torch.tensor(1.0), upper_loss=torch.tensor(2.0),
                            barrier=None if barrier is None else torch.tensor(barrier))  # fmt: skip
    metrics = result.metrics()
    assert list(metrics) == keys and metrics["upper_loss"].item() == 2.0 and metrics["lower_loss"].item() == 1.0
