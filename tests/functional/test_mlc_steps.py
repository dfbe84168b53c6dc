"""The four meta label correction steps against the formulas, recomputed here with `torch.func` on a tiny model.

Each step is run on a copy of the same model, meta model and batches as the recomputation; the meta model takes
plain SGD steps (lr `META_LR`), so its update is `a − META_LR·(meta direction)` and can be checked exactly.
"""

import importlib
import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hf_lilaw.functional import MetaStepInputs, ebomlc_released_step, ebomlc_step, mlc_d_step, mlc_step
from hf_lilaw.mlc.meta_model import LabelCorrectionNetwork

META_LR, LR = 0.1, 0.2
RHO, THRESHOLD, SCALE, ETA = 0.3, 1.0, 0.5, 0.5


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 5), nn.Tanh())
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        h = self.body(x)
        return self.fc(h), h


def batch(rows: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(rows, 4, generator=generator)}, torch.randint(0, 3, (rows,), generator=generator)


NOISY, UPPER, LOWER = batch(6, 1), batch(3, 2), batch(3, 3)


class Setup:
    """A model, a meta model (with its SGD optimizer) and a forward, each a fresh copy of the seeded originals."""

    def __init__(self, main_optimizer=None):
        torch.manual_seed(0)
        self.net = Net()
        self.meta = LabelCorrectionNetwork(
            feature_dim=5, num_labels=3, label_embedding_dim=2, hidden_dim=4, skip_gate=True
        )
        self.meta_optimizer = torch.optim.SGD(self.meta.parameters(), lr=META_LR)
        self.optimizer = (main_optimizer or (lambda p: torch.optim.SGD(p, lr=LR)))(self.net.parameters())
        self.w = {k: v.detach().clone().requires_grad_() for k, v in self.net.named_parameters()}
        self.a = {k: v.detach().clone().requires_grad_() for k, v in self.meta.named_parameters()}

    def forward(self, inputs, params=None):
        return self.net(**inputs) if params is None else functional_call(self.net, dict(params), (), inputs)

    def inputs(self, reduce=list):
        return MetaStepInputs(net=self.net, meta_model=self.meta, meta_optimizer=self.meta_optimizer,
                              forward=self.forward, noisy=NOISY, upper=UPPER, lower=LOWER, reduce=reduce)  # fmt: skip

    # ---- the recomputation ----------------------------------------------------------------------------------------

    def lower(self, w, a):
        """G(w, a): soft CE on the corrected noisy labels and CE on the lower clean half, weighted by their sizes."""
        (x_n, y_n), (x_c, y_c) = NOISY, LOWER
        logits, h = functional_call(self.net, w, (x_n["x"],))
        soft = functional_call(self.meta, a, (h.detach(), y_n))
        noisy = -(soft * logits.log_softmax(-1)).sum(-1).mean()
        clean = F.cross_entropy(functional_call(self.net, w, (x_c["x"],))[0], y_c)
        return (len(y_n) * noisy + len(y_c) * clean) / (len(y_n) + len(y_c))

    def label_kept(self):
        """The corrected labels' mean mass on the given noisy labels, at the starting parameters."""
        x_n, y_n = NOISY
        _, h = functional_call(self.net, self.w, (x_n["x"],))
        soft = functional_call(self.meta, self.a, (h.detach(), y_n))
        return soft.gather(1, y_n[:, None]).mean().detach()

    def mixture(self, w, a, space):
        x, y = UPPER
        logits, h = functional_call(self.net, w, (x["x"],))
        corrected = functional_call(self.meta, a, (h.detach(), y))
        meta = corrected if space == "probs" else corrected.log()
        return F.cross_entropy(RHO * logits + (1 - RHO) * meta, y)

    def check(self, main_grad, meta_direction, main_after=None):
        """The step left `main_grad` in `.grad`, moved the meta model by `−META_LR·meta_direction`, and left the main
        parameters at `main_after` (default: where they started)."""
        main_after = main_after or {k: v.detach() for k, v in self.w.items()}
        for (name, p), g in zip(self.net.named_parameters(), main_grad):
            torch.testing.assert_close(p.grad, g.detach(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(p.detach(), main_after[name], rtol=1e-5, atol=1e-6)
        for (name, p), d in zip(self.meta.named_parameters(), meta_direction):
            torch.testing.assert_close(p.detach(), self.a[name].detach() - META_LR * d, rtol=1e-5, atol=1e-6)
        assert all(p.grad is None for p in self.meta.parameters())


def grad(loss, params, **kwargs):
    return list(torch.autograd.grad(loss, list(params.values()), **kwargs))


def norm_sq(tensors):
    return sum((t * t).sum() for t in tensors)


def dot(a, b):
    return sum((x * y).sum() for x, y in zip(a, b))


@pytest.mark.parametrize("sgd", [True, False])
def test_mlc_step_is_the_second_order_hypergradient_through_the_lookahead(sgd):
    main = (lambda p: torch.optim.SGD(p, lr=LR, weight_decay=0.01, momentum=0.9)) if sgd else torch.optim.AdamW
    s = Setup(main)
    inner_lr = 0.05
    result = mlc_step(s.inputs(), optimizer=s.optimizer, inner_lr=inner_lr)

    lower = s.lower(s.w, s.a)
    g_w = grad(lower, s.w, create_graph=True)
    # SGD's first step (no momentum buffer yet): lr·(g + wd·w); AdamW: the plain step inner_lr·g.
    ahead = {k: w - (LR * (g + 0.01 * w.detach()) if sgd else inner_lr * g) for (k, w), g in zip(s.w.items(), g_w)}
    upper = F.cross_entropy(functional_call(s.net, ahead, (UPPER[0]["x"],))[0], UPPER[1])
    s.check(g_w, grad(upper, s.a))
    torch.testing.assert_close(result.lower_loss, lower)
    torch.testing.assert_close(result.upper_loss, upper)
    assert result.barrier is None and list(result.metrics()) == ["upper_loss", "lower_loss", "label_kept"]
    torch.testing.assert_close(result.label_kept, s.label_kept())
    assert 0 < result.label_kept < 1 and not result.label_kept.requires_grad


@pytest.mark.parametrize("sgd", [True, False])
def test_mlc_step_clips_the_sgd_lookahead_as_the_trainer_clips_its_step(sgd):
    main = (lambda p: torch.optim.SGD(p, lr=LR, weight_decay=0.01, momentum=0.9)) if sgd else torch.optim.AdamW
    s = Setup(main)
    max_grad_norm, inner_lr = 0.05, 0.3
    result = mlc_step(s.inputs(), optimizer=s.optimizer, inner_lr=inner_lr, max_grad_norm=max_grad_norm)

    g_w = grad(s.lower(s.w, s.a), s.w, create_graph=True)
    clip = max_grad_norm / (norm_sq(g_w).sqrt().detach() + 1e-6)  # torch.nn.utils.clip_grad_norm_'s factor
    assert clip < 0.5
    # Clipping scales the gradient before SGD adds the weight decay; the factor is a constant of the hypergradient.
    # An adaptive optimizer's plain-gradient surrogate is not clipped (its size is inner_lr's).
    ahead = {
        k: w - (LR * (clip * g + 0.01 * w.detach()) if sgd else inner_lr * g)
        for (k, w), g in zip(s.w.items(), g_w)
    }
    upper = F.cross_entropy(functional_call(s.net, ahead, (UPPER[0]["x"],))[0], UPPER[1])
    s.check(g_w, grad(upper, s.a))  # `.grad` keeps the unclipped gradient: the Trainer clips it
    torch.testing.assert_close(result.upper_loss, upper)


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_mlc_d_step_is_bomes_barrier_step(inner_steps):
    s = Setup()
    inner_lr = 0.3
    result = mlc_d_step(s.inputs(), inner_lr=inner_lr, inner_steps=inner_steps, barrier_eta=ETA)

    lower = s.lower(s.w, s.a)
    g0_w, g0_a = grad(lower, s.w, retain_graph=True), grad(lower, s.a)
    fast = {k: w.detach() - inner_lr * g for (k, w), g in zip(s.w.items(), g0_w)}
    for _ in range(inner_steps - 1):
        fast = {k: v.requires_grad_() for k, v in fast.items()}
        fast = {k: v.detach() - inner_lr * g for (k, v), g in zip(fast.items(), grad(s.lower(fast, s.a), fast))}
    q_a = [a - b for a, b in zip(g0_a, grad(s.lower(fast, s.a), s.a))]
    upper = F.cross_entropy(functional_call(s.net, s.w, (UPPER[0]["x"],))[0], UPPER[1])
    f_w = grad(upper, s.w)
    q_sq = norm_sq(g0_w + q_a)
    lam = torch.clamp((ETA * q_sq - dot(f_w, g0_w)) / (q_sq + 1e-8), min=0)
    assert lam > 0  # the barrier is active: both blocks move
    s.check([f + lam * q for f, q in zip(f_w, g0_w)], [lam * q for q in q_a])
    torch.testing.assert_close(result.barrier, lam)
    assert list(result.metrics()) == ["lambda", "upper_loss", "lower_loss", "label_kept"]
    torch.testing.assert_close(result.label_kept, s.label_kept())


@pytest.mark.parametrize(("space", "max_grad_norm"), [("log_probs", 0.0), ("probs", 0.05)])
def test_ebomlc_step_keeps_the_inner_step_and_follows_the_alignment_barrier(space, max_grad_norm):
    s = Setup()
    result = ebomlc_step(s.inputs(), optimizer=s.optimizer, rho=RHO, barrier_threshold=THRESHOLD, barrier_scale=SCALE,
                         mixture_space=space, max_grad_norm=max_grad_norm)  # fmt: skip

    lower = s.lower(s.w, s.a)
    g0_w, g0_a = grad(lower, s.w, retain_graph=True), grad(lower, s.a)
    clip = min(1.0, max_grad_norm / (norm_sq(g0_w).sqrt() + 1e-6)) if max_grad_norm > 0 else 1.0
    ahead = {k: (w - LR * clip * g).detach().requires_grad_() for (k, w), g in zip(s.w.items(), g0_w)}
    lower_1 = s.lower(ahead, s.a)
    q_w = [a - b for a, b in zip(g0_w, grad(lower_1, ahead, retain_graph=True))]
    q_a = [a - b for a, b in zip(g0_a, grad(lower_1, s.a))]
    upper = s.mixture(ahead, s.a, space)
    f_w, f_a = grad(upper, ahead, retain_graph=True), grad(upper, s.a)
    lam = SCALE * torch.clamp((THRESHOLD * norm_sq(q_w + q_a) - dot(q_w, f_w)) / (norm_sq(q_w + q_a) + 1e-8), min=0)
    assert lam > 0
    after = {k: v.detach() for k, v in ahead.items()}  # the inner step is kept
    s.check([f + lam * q for f, q in zip(f_w, q_w)], [f + lam * q for f, q in zip(f_a, q_a)], after)
    torch.testing.assert_close(result.barrier, lam)
    torch.testing.assert_close(result.upper_loss, upper)
    torch.testing.assert_close(result.label_kept, s.label_kept())
    # The main model's own clean CE at w' (the mixture's main logits), reported beside the mixture, detached.
    clean = F.cross_entropy(functional_call(s.net, after, (UPPER[0]["x"],))[0], UPPER[1])
    torch.testing.assert_close(result.clean_loss, clean)
    assert not result.clean_loss.requires_grad
    assert list(result.metrics()) == ["lambda", "upper_loss", "clean_loss", "lower_loss", "label_kept"]


def test_ebomlc_released_step_takes_the_alignment_term_with_the_optimizer_step():
    s = Setup(torch.optim.AdamW)  # not SGD: the look-ahead is the plain step inner_lr·g
    inner_lr = 0.3
    result = ebomlc_released_step(s.inputs(), optimizer=s.optimizer, inner_lr=inner_lr, rho=RHO,
                                  barrier_threshold=THRESHOLD, barrier_scale=SCALE)  # fmt: skip

    upper = s.mixture(s.w, s.a, "probs")  # at w, before the look-ahead
    f_w, f_a = grad(upper, s.w, retain_graph=True), grad(upper, s.a)
    lower = s.lower(s.w, s.a)
    g0_w, g0_a = grad(lower, s.w, retain_graph=True), grad(lower, s.a)
    ahead = {k: (w - inner_lr * g).detach().requires_grad_() for (k, w), g in zip(s.w.items(), g0_w)}
    lower_1 = s.lower(ahead, s.a)
    q_w = [a - b for a, b in zip(g0_w, grad(lower_1, ahead, retain_graph=True))]
    q_a = [a - b for a, b in zip(g0_a, grad(lower_1, s.a))]
    descent = [-inner_lr * f for f in f_w]
    lam = SCALE * torch.clamp((THRESHOLD * norm_sq(q_w + q_a) - dot(q_w, descent)) / (norm_sq(q_w + q_a) + 1e-8), min=0)
    assert lam > 0
    after = {k: v.detach() for k, v in ahead.items()}
    s.check([lam * q + d for q, d in zip(q_w, descent)], [lam * q + f for q, f in zip(q_a, f_a)], after)
    torch.testing.assert_close(result.lower_loss, lower)
    torch.testing.assert_close(result.label_kept, s.label_kept())
    clean = F.cross_entropy(functional_call(s.net, s.w, (UPPER[0]["x"],))[0], UPPER[1])  # at w, as the mixture
    torch.testing.assert_close(result.clean_loss, clean)
    assert not result.clean_loss.requires_grad


def test_reduce_averages_every_gradient_the_step_uses():
    # A stand-in for the cross-process mean that doubles: the main direction and the meta step double with it.
    runs = []
    for reduce in (list, lambda grads: [2 * g for g in grads]):
        s = Setup()
        mlc_step(s.inputs(reduce), optimizer=s.optimizer, inner_lr=LR)
        runs.append(s)
    for a, b in zip(runs[0].net.parameters(), runs[1].net.parameters()):
        torch.testing.assert_close(2 * a.grad, b.grad)
    for a, b, start in zip(runs[0].meta.parameters(), runs[1].meta.parameters(), runs[0].a.values()):
        torch.testing.assert_close(2 * (a - start), b - start)


def test_the_steps_stay_functions_once_the_trainer_has_imported_their_modules():
    import hf_lilaw.functional as functional

    importlib.import_module("hf_lilaw.mlc.trainer")  # imports every step's module

    for name in ("mlc_step", "mlc_d_step", "ebomlc_step", "ebomlc_released_step"):
        assert inspect.isfunction(getattr(functional, name)), name
