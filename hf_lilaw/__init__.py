"""hf_lilaw: LiLAW and meta label correction for `transformers.Trainer`, for labels you cannot fully trust.

Names are imported on first use (module ``__getattr__``), so ``import hf_lilaw`` loads neither the trainers
(and with them ``transformers.Trainer``) nor matplotlib, scikit-learn, scipy or PIL. Import `hf_lilaw.models`
to register the tabular and time-series models with the transformers Auto classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__
from .core.columns import BOOKKEEPING_COLUMNS, CLEAN_LABEL_COLUMN, NOISY_FLAG_COLUMN, SAMPLE_ID_COLUMN

# Public name -> module that defines it (relative to this package).
_EXPORTS = {
    "BaseTrainer": ".core.base_trainer",
    "TrainingDynamicsObserver": ".core.observers",
    "split_meta_set": ".core.splits",
    "LiLAWConfig": ".lilaw.config",
    "LiLAWTrainer": ".lilaw.trainer",
    "ELRConfig": ".elr",
    "ELRTrainer": ".elr",
    "RunComparison": ".comparison",
    "compare_runs": ".comparison",
    "EBOMLCTrainer": ".mlc",
    "MetaLabelCorrectionConfig": ".mlc",
    "MetaLabelCorrectionTrainer": ".mlc",
    "MLCDTrainer": ".mlc",
    "MLCTrainer": ".mlc",
    "TrainingDynamics": ".analysis.dynamics",
    "TrainingDynamicsRecorder": ".analysis.dynamics",
    "HARDNESS_SCORES": ".analysis.scores",
    "find_label_issues": ".analysis.label_issues",
    "label_issue_metrics": ".analysis.label_issues",
    "plot_data_map": ".analysis.plots",
    "plot_lilaw_parameters": ".lilaw.plot",
    "plot_weight_histogram": ".analysis.plots",
    "clean_labels": ".analysis.cleaning",
    "CrossEntropy": ".losses",
    "FocalLoss": ".losses",
    "GeneralizedCrossEntropy": ".losses",
    "SymmetricCrossEntropy": ".losses",
    "make_loss": ".losses",
    "efficientnet_lite0_checkpoint": ".models",
    "per_sample_statistics": ".functional.statistics",
    "per_sample_loss": ".functional.losses",
    "LiLAWWeights": ".functional.weighting",
    "lilaw_meta_gradient": ".functional.weighting",
    "lilaw_meta_update": ".functional.weighting",
    "lilaw_meta_loss": ".functional.weighting",
    "lilaw_weights": ".functional.weighting",
    "compute_classification_metrics": ".metrics",
    "load_classification_metric": ".metrics",
    "fairness_metrics": ".metrics",
    "make_fairness_compute_metrics": ".metrics",
    "INPUT_NOISE_TYPES": ".noise",
    "LABEL_NOISE_TYPES": ".noise",
    "NOISE_TYPES": ".noise",
    "add_input_noise": ".noise",
    "add_label_noise": ".noise",
    "noisy_labels": ".noise",
    "available_datasets": ".data",
    "image_transforms": ".data",
    "load_adult": ".data",
    "load_ucr": ".data",
    "bundled_ucr_sets": ".data",
    "load_classification_dataset": ".data",
    "load_digits_images": ".data",
    "load_fashion_mnist": ".data",
    "fashion_mnist_arrays": ".data",
    "load_ecg5000": ".data",
    "load_medmnist": ".data",
    "load_synthetic_adult": ".data",
    "load_synthetic_ecg": ".data",
    "register_dataset": ".data",
    "vector_transform": ".data",
    "with_meta_split": ".data",
}

__all__ = sorted(
    ["BOOKKEEPING_COLUMNS", "CLEAN_LABEL_COLUMN", "NOISY_FLAG_COLUMN", "SAMPLE_ID_COLUMN", "__version__", *_EXPORTS]
)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .analysis.cleaning import clean_labels
    from .analysis.dynamics import TrainingDynamics, TrainingDynamicsRecorder
    from .analysis.label_issues import find_label_issues, label_issue_metrics
    from .analysis.plots import plot_data_map, plot_weight_histogram
    from .analysis.scores import HARDNESS_SCORES
    from .core.base_trainer import BaseTrainer
    from .core.observers import TrainingDynamicsObserver
    from .comparison import RunComparison, compare_runs
    from .core.splits import split_meta_set
    from .data import (
        available_datasets,
        image_transforms,
        load_adult,
        load_classification_dataset,
        load_digits_images,
        load_fashion_mnist,
        fashion_mnist_arrays,
        load_ecg5000,
        load_medmnist,
        load_synthetic_adult,
        load_synthetic_ecg,
        load_ucr,
        bundled_ucr_sets,
        register_dataset,
        vector_transform,
        with_meta_split,
    )
    from .elr import ELRConfig, ELRTrainer
    from .functional.losses import per_sample_loss
    from .functional.statistics import per_sample_statistics
    from .functional.weighting import (
        LiLAWWeights,
        lilaw_meta_gradient,
        lilaw_meta_update,
        lilaw_meta_loss,
        lilaw_weights,
    )
    from .lilaw.config import LiLAWConfig
    from .lilaw.plot import plot_lilaw_parameters
    from .losses import CrossEntropy, FocalLoss, GeneralizedCrossEntropy, SymmetricCrossEntropy, make_loss
    from .models import efficientnet_lite0_checkpoint
    from .lilaw.trainer import LiLAWTrainer
    from .metrics import (
        compute_classification_metrics,
        fairness_metrics,
        load_classification_metric,
        make_fairness_compute_metrics,
    )
    from .mlc import EBOMLCTrainer, MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer, MLCDTrainer, MLCTrainer
    from .noise import INPUT_NOISE_TYPES, LABEL_NOISE_TYPES, NOISE_TYPES, add_input_noise, add_label_noise, noisy_labels
