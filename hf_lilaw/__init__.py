"""hf_lilaw: LiLAW and meta label correction for `transformers.Trainer`, for labels you cannot fully trust."""

from .config import LiLAWConfig
from .meta_split import split_meta_set
from .trainer import LiLAWTrainer
from .weighting import LiLAWWeights, lilaw_meta_gradient, lilaw_meta_update, lilaw_weights, per_sample_loss

__version__ = "0.1.0"

__all__ = [
    "LiLAWConfig",
    "LiLAWTrainer",
    "LiLAWWeights",
    "lilaw_meta_gradient",
    "lilaw_meta_update",
    "lilaw_weights",
    "per_sample_loss",
    "split_meta_set",
]
