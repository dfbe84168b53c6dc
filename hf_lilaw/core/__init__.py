"""Trainer machinery shared by the method families: the base trainer, columns and label checks, side sets (a
family's meta or clean set: checks, batches, cache, stream position), extra checkpoint state, model cards. A new
family subclasses `BaseTrainer` and registers its side set; the rest is its toolbox. Names load on first use, so
the package face does not import `transformers.Trainer`."""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "BaseTrainer": ".base_trainer",
    "SideSet": ".side_set",
    "TrainingDynamicsObserver": ".observers",
    "TrainingState": ".training_state",
    "split_meta_set": ".splits",
    "with_sample_id": ".columns",
    "SAMPLE_ID_COLUMN": ".columns",
    "CLEAN_LABEL_COLUMN": ".columns",
    "NOISY_FLAG_COLUMN": ".columns",
    "BOOKKEEPING_COLUMNS": ".columns",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
