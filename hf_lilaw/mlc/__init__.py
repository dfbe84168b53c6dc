"""Meta label correction (EBOMLC, MLC-D, MLC): a second trainer family, independent of LiLAW.

The bilevel steps are pure functions in `hf_lilaw.functional` (modules `mlc_second_order`, `mlc_bome`, `mlc_ebomlc`),
with the barrier math in `hf_lilaw.functional.barrier` and the look-ahead in `hf_lilaw.functional.mlc_lookahead`.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "EBOMLCTrainer": ".trainer",
    "LabelCorrectionNetwork": ".meta_model",
    "MLCDTrainer": ".trainer",
    "MLCTrainer": ".trainer",
    "MetaLabelCorrectionConfig": ".config",
    "MetaLabelCorrectionState": ".state",
    "MetaLabelCorrectionTrainer": ".trainer",
    "PenultimateFeatures": ".features",
}
# Importable for code that reads checkpoints, but not part of the public API.
_INTERNAL = {"MLC_STATE_NAME": ".trainer"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, {**_EXPORTS, **_INTERNAL}, globals())
