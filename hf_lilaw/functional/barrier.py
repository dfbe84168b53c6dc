"""Pure math of meta label correction: barrier coefficients and the upper and lower losses.

Gradients are lists of per-parameter tensors (one list per block, in a fixed parameter order). Inner products and
norms are accumulated in float32 and returned as 0-dim tensors, so nothing here synchronises with the device.
"""

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "alignment_barrier_coefficient",
    "dynamic_barrier_coefficient",
    "flat_dot",
    "lower_loss",
    "mixture_upper_loss",
    "soft_cross_entropy",
]


def flat_dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """Inner product of two gradient lists, as if each were flattened into one vector."""
    if len(a) != len(b):
        raise ValueError(f"Gradient lists differ in length: {len(a)} vs {len(b)}.")
    if len(a) == 0:
        return torch.zeros(())
    return sum((x.float() * y.float()).sum() for x, y in zip(a, b, strict=True))


def dynamic_barrier_coefficient(
    *, grad_f: Sequence[Tensor], grad_q: Sequence[Tensor], eta: float, eps: float = 1e-8
) -> Tensor:
    """BOME's dynamic barrier: `λ = max((φ − ⟨∇f, ∇q⟩) / ‖∇q‖², 0)` with `φ = η·‖∇q‖²`.

    The update direction `∇f + λ·∇q` then decreases `q` at least at rate `φ`.

    Args:
        grad_f: Gradient of the upper loss over all blocks (main and meta parameters).
        grad_q: Gradient of the value-function gap `q`, same layout as `grad_f`.
        eta: η_b (BOME's toy code uses 0.5).
        eps: Added to `‖∇q‖²` so that a vanishing `∇q` gives a finite coefficient.
    """
    q_sq = flat_dot(grad_q, grad_q)
    return torch.clamp((eta * q_sq - flat_dot(grad_f, grad_q)) / (q_sq + eps), min=0.0)


def alignment_barrier_coefficient(
    *,
    grad_f_main: Sequence[Tensor],
    grad_q_main: Sequence[Tensor],
    grad_q_meta: Sequence[Tensor],
    threshold: float,
    scale: float,
    eps: float = 1e-8,
) -> Tensor:
    """EBOMLC's alignment-aware barrier: `λ = ξ·max((δ_b·‖∇q‖² − ⟨∇_w q, ∇_w f⟩) / (‖∇q‖² + ε), 0)`.

    The alignment term uses only the main-model block `w`; the norm uses both blocks.

    Args:
        grad_f_main: Gradient of the upper loss with respect to the main model.
        grad_q_main: Main-model block of `∇q`.
        grad_q_meta: Meta-model block of `∇q`.
        threshold: δ_b.
        scale: ξ.
        eps: ε of the denominator.
    """
    q_sq = flat_dot(grad_q_main, grad_q_main) + flat_dot(grad_q_meta, grad_q_meta)
    align = flat_dot(grad_q_main, grad_f_main)
    return scale * torch.clamp((threshold * q_sq - align) / (q_sq + eps), min=0.0)


def mixture_upper_loss(
    main_logits: Tensor,
    meta_log_probs: Tensor,
    labels: Tensor,
    *,
    rho: float,
    space: Literal["log_probs", "probs"] = "log_probs",
) -> Tensor:
    """EBOMLC's upper loss `CE(ρ·main_logits + (1−ρ)·m, y)`, averaged over the clean batch.

    With `space="log_probs"` (default) `m` is the meta model's log-probabilities. Both terms are then on the logit
    scale and, since `log_softmax` ignores per-row shifts, `softmax` of the mixture is the normalised geometric
    mixture `softmax(main_logits)^ρ · p_meta^(1−ρ)`: `ρ = 1` is the main model's CE, `ρ = 0` the meta model's NLL.
    With `space="probs"` `m` is `p_meta` itself, as in the authors' released code; a probability in [0, 1] added to
    unbounded logits is a weak, class-count-dependent signal (for ρ = 0 the loss cannot fall below
    `log(1 + (C−1)/e)`), which is why it is not the default.

    Args:
        main_logits: `(batch, C)` logits of the main model on the clean batch.
        meta_log_probs: `(batch, C)` log-probabilities of the meta model for the clean batch and its labels.
        labels: `(batch,)` clean labels.
        rho: ρ in [0, 1].
        space: How the meta output enters the mixture.
    """
    meta = meta_log_probs.float()
    if space == "probs":
        meta = meta.exp()
    elif space != "log_probs":
        raise ValueError(f"space must be 'log_probs' or 'probs', got {space!r}.")
    return F.cross_entropy(rho * main_logits.float() + (1.0 - rho) * meta, labels)


def soft_cross_entropy(logits: Tensor, soft_targets: Tensor) -> Tensor:
    """Mean over the batch of `−Σ_c t_c·log softmax(logits)_c` for soft targets `t` (rows summing to one)."""
    return F.cross_entropy(logits.float(), soft_targets.float())


def lower_loss(
    noisy_logits: Tensor,
    soft_labels: Tensor,
    clean_logits: Tensor | None = None,
    clean_labels: Tensor | None = None,
    *,
    weights: Sequence[float] = (1.0, 0.5),
) -> Tensor:
    """MLC's lower loss `G(w, a)`: soft CE against the corrected labels, mixed with plain CE on clean examples.

    `G = (w_n·softCE(noisy_logits, soft_labels) + w_c·CE(clean_logits, clean_labels)) / (w_n + w_c)`; without
    clean logits (or with `w_c = 0`) it is the soft CE alone.

    Args:
        noisy_logits: `(batch, C)` main-model logits on the noisy batch.
        soft_labels: `(batch, C)` corrected labels from the meta model (not detached: `G` depends on it).
        clean_logits: `(batch_c, C)` main-model logits on the clean half that joins the lower loss.
        clean_labels: `(batch_c,)` labels of that clean half.
        weights: `(w_n, w_c)`; the released code's batch sizes 100:50 are `(1.0, 0.5)`.
    """
    w_noisy, w_clean = weights
    loss = soft_cross_entropy(noisy_logits, soft_labels)
    if clean_logits is None or w_clean == 0:
        return loss
    if clean_labels is None:
        raise ValueError("clean_labels are required with clean_logits.")
    clean = F.cross_entropy(clean_logits.float(), clean_labels)
    return (w_noisy * loss + w_clean * clean) / (w_noisy + w_clean)
