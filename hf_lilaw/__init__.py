"""hf_lilaw: LiLAW and meta label correction for `transformers.Trainer`, for labels you cannot fully trust."""

from . import models  # registers the time-series and tabular models with the Auto classes
from .core.columns import BOOKKEEPING_COLUMNS, CLEAN_LABEL_COLUMN, NOISY_FLAG_COLUMN, SAMPLE_ID_COLUMN
from .lilaw.config import LiLAWConfig
from .data import (
    available_datasets,
    image_transforms,
    load_adult,
    load_classification_dataset,
    load_digits_images,
    load_ecg5000,
    load_medmnist,
    load_synthetic_adult,
    load_synthetic_ecg,
    register_dataset,
    vector_transform,
    with_meta_split,
)
from .analysis.dynamics import TrainingDynamicsRecorder
from .analysis.scores import HARDNESS_SCORES, TrainingDynamics
from .functional.statistics import per_sample_statistics
from .analysis.label_issues import find_label_issues, label_issue_metrics
from .core.splits import split_meta_set
from .metrics import compute_classification_metrics, fairness_metrics, make_fairness_compute_metrics
from .mlc import (
    EBOMLCTrainer,
    MetaLabelCorrectionConfig,
    MetaLabelCorrectionTrainer,
    MLCDTrainer,
    MLCTrainer,
)
from .noise import INPUT_NOISE_TYPES, LABEL_NOISE_TYPES, NOISE_TYPES, add_input_noise, add_label_noise, noisy_labels
from .analysis.plots import plot_data_map, plot_lilaw_parameters, plot_weight_histogram
from .lilaw.trainer import LiLAWTrainer
from .functional.losses import per_sample_loss
from .functional.weighting import LiLAWWeights, lilaw_meta_gradient, lilaw_meta_update, lilaw_weights

__version__ = "0.1.0"

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "CLEAN_LABEL_COLUMN",
    "EBOMLCTrainer",
    "HARDNESS_SCORES",
    "INPUT_NOISE_TYPES",
    "LABEL_NOISE_TYPES",
    "LiLAWConfig",
    "LiLAWTrainer",
    "LiLAWWeights",
    "MLCDTrainer",
    "MLCTrainer",
    "MetaLabelCorrectionConfig",
    "MetaLabelCorrectionTrainer",
    "NOISE_TYPES",
    "NOISY_FLAG_COLUMN",
    "SAMPLE_ID_COLUMN",
    "TrainingDynamics",
    "TrainingDynamicsRecorder",
    "add_input_noise",
    "add_label_noise",
    "available_datasets",
    "compute_classification_metrics",
    "fairness_metrics",
    "find_label_issues",
    "image_transforms",
    "label_issue_metrics",
    "lilaw_meta_gradient",
    "lilaw_meta_update",
    "lilaw_weights",
    "load_adult",
    "load_classification_dataset",
    "load_digits_images",
    "load_ecg5000",
    "load_medmnist",
    "load_synthetic_adult",
    "load_synthetic_ecg",
    "make_fairness_compute_metrics",
    "noisy_labels",
    "per_sample_loss",
    "per_sample_statistics",
    "plot_data_map",
    "plot_lilaw_parameters",
    "plot_weight_histogram",
    "register_dataset",
    "split_meta_set",
    "vector_transform",
    "with_meta_split",
]
