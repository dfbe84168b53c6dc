"""Small from-scratch models for the non-image examples, registered with the transformers Auto classes, and the
offline ImageNet EfficientNet-Lite0 checkpoint (`efficientnet_lite0_checkpoint`).

Importing this package registers them, so after ``import hf_lilaw.models``,
``AutoModelForSequenceClassification.from_pretrained(<folder saved by save_pretrained>)`` rebuilds them. A saved folder
also holds the model's code (``mlp.py`` or ``lstm.py``) and an ``auto_map``, as transformers' custom models do: without
hf_lilaw it loads with ``trust_remote_code=True``.
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
    # Without these a folder loaded where hf_lilaw is not imported (a Hub repo, a pipeline) failed with transformers'
    # "does not recognize this architecture ... update Transformers"; now it loads with trust_remote_code=True, and
    # without it transformers asks for that. Where hf_lilaw.models is imported the registered classes are used.
    _config.register_for_auto_class()
    _model.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "LSTMClassifierConfig",
    "MLPClassifierConfig",
    "MLPForTabularClassification",
    "StackedLSTMForTimeSeriesClassification",
    "efficientnet_lite0_checkpoint",
]
