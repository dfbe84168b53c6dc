"""Pure tensor math, no Trainer: LiLAW weights and meta update, per-sample losses, MLC barrier math and bilevel steps,
statistics."""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "LiLAWWeights": ".weighting",
    "lilaw_meta_gradient": ".weighting",
    "lilaw_meta_update": ".weighting",
    "lilaw_meta_loss": ".weighting",
    "lilaw_weights": ".weighting",
    "elr_loss": ".elr",
    "elr_probabilities": ".elr",
    "elr_target_update": ".elr",
    "per_sample_loss": ".losses",
    "per_sample_statistics": ".statistics",
    "MetaStepInputs": ".mlc_bilevel",
    "MetaStepResult": ".mlc_bilevel",
    "ebomlc_released_step": ".mlc_ebomlc",
    "ebomlc_step": ".mlc_ebomlc",
    "lookahead_steps": ".mlc_lookahead",
    "mlc_d_step": ".mlc_bome",
    "mlc_step": ".mlc_second_order",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
