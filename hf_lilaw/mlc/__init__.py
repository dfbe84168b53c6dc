"""Meta label correction (EBOMLC, MLC-D, MLC): a second trainer family, independent of LiLAW."""

from ..functional.barrier import (
    alignment_barrier_coefficient,
    dynamic_barrier_coefficient,
    lower_loss,
    mixture_upper_loss,
    soft_cross_entropy,
)
from .config import MetaLabelCorrectionConfig
from .features import PenultimateFeatures, find_classification_head, pool_features
from .lookahead import is_sgd, lookahead_steps
from .meta_model import LabelCorrectionNetwork
from .trainer import (
    MLC_STATE_NAME,
    EBOMLCTrainer,
    MetaLabelCorrectionState,
    MetaLabelCorrectionTrainer,
    MLCDTrainer,
    MLCTrainer,
)

__all__ = [
    "MLC_STATE_NAME",
    "EBOMLCTrainer",
    "LabelCorrectionNetwork",
    "MLCDTrainer",
    "MLCTrainer",
    "MetaLabelCorrectionConfig",
    "MetaLabelCorrectionState",
    "MetaLabelCorrectionTrainer",
    "PenultimateFeatures",
    "alignment_barrier_coefficient",
    "dynamic_barrier_coefficient",
    "find_classification_head",
    "is_sgd",
    "lookahead_steps",
    "lower_loss",
    "mixture_upper_loss",
    "pool_features",
    "soft_cross_entropy",
]
