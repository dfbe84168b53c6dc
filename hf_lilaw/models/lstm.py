"""A stacked LSTM classifier for univariate or multivariate time series (the paper's ECG5000 model, §4.2)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class LSTMClassifierConfig(PreTrainedConfig):
    """Configuration of `StackedLSTMForTimeSeriesClassification`.

    The paper calls its ECG5000 model "a simple stacked LSTM" without sizes; the defaults (two layers of
    64 units, dropout 0.2 between them and before the head) are this library's choice.

    Args:
        input_size: Channels per time step (1 for ECG5000).
        hidden_size: Units per LSTM layer (per direction).
        num_layers: Number of stacked LSTM layers.
        dropout: Dropout between LSTM layers and on the pooled state before the classifier.
        bidirectional: Runs each layer in both directions and concatenates the final states.
        num_labels: Number of classes (a `PreTrainedConfig` argument; 2 unless given or set by ``id2label``).
    """

    model_type = "lilaw_lstm"

    input_size: int = 1
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.2
    bidirectional: bool = False
    initializer_range: float = 0.02


class StackedLSTMForTimeSeriesClassification(PreTrainedModel):
    """Stacked LSTM over ``input_values`` whose top layer's final hidden state feeds a linear classifier.

    Inputs are ``input_values`` of shape ``(batch, length)`` (one channel) or ``(batch, length, channels)``;
    the model name follows transformers' audio models, which take raw signals as ``input_values`` too.
    """

    config_class = LSTMClassifierConfig
    main_input_name = "input_values"

    def __init__(self, config: LSTMClassifierConfig) -> None:
        super().__init__(config)
        # forward's cross-entropy takes class indices: with one logit it is 0 for every row, and regression or
        # multi-label targets are cast to indices, so such a config would train on a wrong loss without a word
        if config.num_labels < 2 or config.problem_type not in (None, "single_label_classification"):
            raise ValueError(
                f"StackedLSTMForTimeSeriesClassification is a single-label classifier (cross-entropy over one logit per "
                f"class), got num_labels={config.num_labels}, problem_type={config.problem_type!r}. Set num_labels "
                "to the number of classes, 2 or more (2 for a binary task), and leave problem_type unset."
            )
        self.lstm = nn.LSTM(
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size * (2 if config.bidirectional else 1), config.num_labels)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """Returns ``logits`` of shape ``(batch, num_labels)``, and the mean cross-entropy ``loss`` given ``labels``."""
        x = input_values.unsqueeze(-1) if input_values.dim() == 2 else input_values
        if x.dim() != 3 or x.shape[-1] != self.config.input_size:
            raise ValueError(
                f"Expected input_values of shape (batch, length) or (batch, length, {self.config.input_size}), "
                f"got {tuple(input_values.shape)}; set LSTMClassifierConfig(input_size=<channels>)."
            )
        _, (h_n, _) = self.lstm(x.to(self.classifier.weight.dtype))
        directions = 2 if self.config.bidirectional else 1
        pooled = torch.cat(list(h_n[-directions:]), dim=-1)  # last layer, every direction
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels.long()) if labels is not None else None
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)
