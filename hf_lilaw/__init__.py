"""hf_lilaw: LiLAW, early-learning regularisation and meta label correction for `transformers.Trainer`, for labels
you cannot fully trust.

The top level holds the trainers, their configs, the robust losses and the main tools. Everything else is in its
subpackage, each with its own ``__all__``: `hf_lilaw.data` (loaders, transforms), `hf_lilaw.noise` (noise types,
label arrays), `hf_lilaw.analysis` (dynamics, scores, plots), `hf_lilaw.metrics`, `hf_lilaw.comparison`,
`hf_lilaw.models`, `hf_lilaw.functional` (the pure tensor math), `hf_lilaw.core` (the shared Trainer machinery,
column names, `split_meta_set`), `hf_lilaw.scripts` (helpers for command-line training scripts such as the
examples) and the families `hf_lilaw.lilaw`, `hf_lilaw.elr`, `hf_lilaw.mlc`.

Names are imported on first use (module ``__getattr__``), so ``import hf_lilaw`` loads neither the trainers
(and with them ``transformers.Trainer``) nor matplotlib, scikit-learn, scipy or PIL. Import `hf_lilaw.models`
to register the tabular and time-series models with the transformers Auto classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

# Public name -> module that defines it (relative to this package).
_EXPORTS = {
    # trainers and their configs
    "BaseTrainer": ".core.base_trainer",
    "LiLAWConfig": ".lilaw.config",
    "LiLAWTrainer": ".lilaw.trainer",
    "ELRConfig": ".elr",
    "ELRTrainer": ".elr",
    "MetaLabelCorrectionConfig": ".mlc",
    "MetaLabelCorrectionTrainer": ".mlc",
    "EBOMLCTrainer": ".mlc",
    "MLCDTrainer": ".mlc",
    "MLCTrainer": ".mlc",
    # robust losses for Trainer's compute_loss_func
    "CrossEntropy": ".losses",
    "FocalLoss": ".losses",
    "GeneralizedCrossEntropy": ".losses",
    "SymmetricCrossEntropy": ".losses",
    "make_loss": ".losses",
    # the main tools: noise in, mislabelled rows out, runs compared
    "add_label_noise": ".noise",
    "add_input_noise": ".noise",
    "TrainingDynamicsRecorder": ".analysis",
    "find_label_issues": ".analysis",
    "clean_labels": ".analysis",
    "compute_classification_metrics": ".metrics",
    "compare_runs": ".comparison",
}

__all__ = sorted(["__version__", *_EXPORTS])

# Names the top level exported before it was cut to the list above -> the public module that holds them now.
# They still resolve, with a FutureWarning naming the new import.
_MOVED = {
    **dict.fromkeys(["BOOKKEEPING_COLUMNS", "CLEAN_LABEL_COLUMN", "NOISY_FLAG_COLUMN", "SAMPLE_ID_COLUMN"], "hf_lilaw.core"),
    **dict.fromkeys(["TrainingDynamicsObserver", "split_meta_set"], "hf_lilaw.core"),
    "RunComparison": "hf_lilaw.comparison",
    "plot_lilaw_parameters": "hf_lilaw.lilaw",
    "efficientnet_lite0_checkpoint": "hf_lilaw.models",
    **dict.fromkeys(
        ["TrainingDynamics", "HARDNESS_SCORES", "label_issue_metrics", "plot_data_map", "plot_weight_histogram"],
        "hf_lilaw.analysis",
    ),
    **dict.fromkeys(
        ["LiLAWWeights", "lilaw_meta_gradient", "lilaw_meta_update", "lilaw_meta_loss", "lilaw_weights",
         "per_sample_loss", "per_sample_statistics"],
        "hf_lilaw.functional",
    ),  # fmt: skip
    **dict.fromkeys(
        ["load_classification_metric", "fairness_metrics", "make_fairness_compute_metrics"], "hf_lilaw.metrics"
    ),
    **dict.fromkeys(["INPUT_NOISE_TYPES", "LABEL_NOISE_TYPES", "NOISE_TYPES", "noisy_labels"], "hf_lilaw.noise"),
    **dict.fromkeys(
        ["available_datasets", "bundled_ucr_sets", "fashion_mnist_arrays", "image_transforms", "load_adult",
         "load_classification_dataset", "load_digits_images", "load_ecg5000", "load_fashion_mnist", "load_medmnist",
         "load_synthetic_adult", "load_synthetic_ecg", "load_ucr", "register_dataset", "vector_transform",
         "with_meta_split"],
        "hf_lilaw.data",
    ),  # fmt: skip
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), moved=_MOVED)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .analysis import TrainingDynamicsRecorder, clean_labels, find_label_issues
    from .comparison import compare_runs
    from .core.base_trainer import BaseTrainer
    from .elr import ELRConfig, ELRTrainer
    from .lilaw.config import LiLAWConfig
    from .lilaw.trainer import LiLAWTrainer
    from .losses import CrossEntropy, FocalLoss, GeneralizedCrossEntropy, SymmetricCrossEntropy, make_loss
    from .metrics import compute_classification_metrics
    from .mlc import EBOMLCTrainer, MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer, MLCDTrainer, MLCTrainer
    from .noise import add_input_noise, add_label_noise
