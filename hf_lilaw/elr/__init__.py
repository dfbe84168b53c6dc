"""Early-learning regularisation (ELR): cross-entropy plus a pull towards the model's own early predictions."""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "ELRConfig": ".config",
    "ELRState": ".state",
    "ELRTrainer": ".trainer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
