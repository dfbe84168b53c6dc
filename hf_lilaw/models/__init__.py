"""Small from-scratch models for the non-image examples, registered with the transformers Auto classes, and the
offline ImageNet EfficientNet-Lite0 checkpoint (`efficientnet_lite0_checkpoint`).

Importing this package registers them, so after ``import hf_lilaw.models``,
``AutoModelForSequenceClassification.from_pretrained(<folder saved by save_pretrained>)`` rebuilds them.
"""

from transformers import AutoConfig, AutoModelForSequenceClassification

from .efficientnet_lite import efficientnet_lite0_checkpoint
from .lstm import LSTMClassifierConfig, StackedLSTMForTimeSeriesClassification
from .mlp import MLPClassifierConfig, MLPForTabularClassification

for _config, _model in (
    (LSTMClassifierConfig, StackedLSTMForTimeSeriesClassification),
    (MLPClassifierConfig, MLPForTabularClassification),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModelForSequenceClassification.register(_config, _model, exist_ok=True)

__all__ = [
    "LSTMClassifierConfig",
    "MLPClassifierConfig",
    "MLPForTabularClassification",
    "StackedLSTMForTimeSeriesClassification",
    "efficientnet_lite0_checkpoint",
]
