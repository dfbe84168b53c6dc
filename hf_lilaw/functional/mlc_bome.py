"""MLC-D's bilevel step: MLC solved with BOME's dynamic barrier (an ablation: no clean-set term reaches the meta
model)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .barrier import dynamic_barrier_coefficient
from .mlc_bilevel import MetaStepInputs, MetaStepResult, corrected_lower_loss, gradients, set_gradients, step_meta_model

__all__ = ["mlc_d_step"]


def mlc_d_step(inputs: MetaStepInputs, *, inner_lr: float, inner_steps: int, barrier_eta: float) -> MetaStepResult:
    """One MLC-D step: `inner_steps` discarded inner steps, then one first-order step of both blocks.

    `q(w, a) = G(w, a) − G(w_T, a)` with `w_T` a stop-gradient constant (as in BOME), so `∇_w q = ∇_w G(w, a)` and
    `∇_a q = ∇_a G(w, a) − ∇_a G(w_T, a)`. The upper loss is the main model's plain CE on `inputs.upper` at `w`, so
    `∇_a f = 0`. The inner steps are plain SGD of `inner_lr` on the noisy batch, on a functional copy (`w` never
    moves). The main direction `∇_w f + λ·∇_w q` is left in the main parameters' `.grad`; the meta model takes one
    meta optimizer step along `λ·∇_a q`.

    Args:
        inner_lr: Step size of the inner steps.
        inner_steps: Their number T.
        barrier_eta: η_b of `dynamic_barrier_coefficient`.
    """
    named = [(name, p) for name, p in inputs.net.named_parameters() if p.requires_grad]
    names, params = [name for name, _ in named], [p for _, p in named]
    meta = list(inputs.meta_model.parameters())
    n = len(params)
    reduce = inputs.reduce

    stats: dict[str, torch.Tensor] = {}
    lower_0 = corrected_lower_loss(inputs, stats=stats)
    g0, used = gradients(lower_0, params + meta)
    g0 = reduce(g0)

    # The first inner step reuses ∇_w G(w, a).
    fast = [p.detach() - inner_lr * g for p, g in zip(params, g0[:n])]
    for _ in range(inner_steps - 1):
        fast = [t.requires_grad_() for t in fast]
        grads, _ = gradients(corrected_lower_loss(inputs, dict(zip(names, fast))), fast)
        grads = reduce(grads)
        fast = [t.detach() - inner_lr * g for t, g in zip(fast, grads)]
    g1_meta, _ = gradients(corrected_lower_loss(inputs, dict(zip(names, fast)), with_clean=False), meta)
    g1_meta = reduce(g1_meta)
    del fast

    x_up, y_up = inputs.upper
    logits, _ = inputs.forward(x_up)
    upper_loss = F.cross_entropy(logits.float(), y_up)
    grad_f, used_f = gradients(upper_loss, params)
    grad_f = reduce(grad_f)

    grad_q_meta = [a - b for a, b in zip(g0[n:], g1_meta)]
    lam = dynamic_barrier_coefficient(
        grad_f=grad_f + [torch.zeros_like(p) for p in meta], grad_q=g0[:n] + grad_q_meta, eta=barrier_eta
    )
    set_gradients(params, [f + lam * q for f, q in zip(grad_f, g0[:n])], [a or b for a, b in zip(used[:n], used_f)])
    step_meta_model(inputs, [lam * q for q in grad_q_meta])
    return MetaStepResult(lower_loss=lower_0, upper_loss=upper_loss, barrier=lam, label_kept=stats["label_kept"])
