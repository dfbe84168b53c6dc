"""A small MLP for encoded tabular rows (the fairness example on Adult)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class MLPClassifierConfig(PreTrainedConfig):
    """Configuration of `MLPForTabularClassification`.

    Args:
        input_size: Number of features per row (length of the ``features`` column); required.
        hidden_sizes: Width of each hidden layer.
        dropout: Dropout after each hidden layer.
        num_labels: Number of classes, at least 2 (the loss is cross-entropy over one logit per class).
    """

    model_type = "lilaw_tabular_mlp"

    input_size: int = 0
    hidden_sizes: tuple[int, ...] | list[int] = (64, 64)
    dropout: float = 0.1
    initializer_range: float = 0.02


class MLPForTabularClassification(PreTrainedModel):
    """Linear → ReLU → dropout blocks and a linear head over ``input_values`` of shape ``(batch, features)``."""

    config_class = MLPClassifierConfig
    main_input_name = "input_values"

    def __init__(self, config: MLPClassifierConfig) -> None:
        super().__init__(config)
        if config.input_size < 1:
            raise ValueError(
                "Set MLPClassifierConfig(input_size=<number of features>), e.g. len(dataset[0]['features'])."
            )
        # forward's cross-entropy takes class indices: with one logit it is 0 for every row, and regression or
        # multi-label targets are cast to indices, so such a config would train on a wrong loss without a word
        if config.num_labels < 2 or config.problem_type not in (None, "single_label_classification"):
            raise ValueError(
                f"MLPForTabularClassification is a single-label classifier (cross-entropy over one logit per class), "
                f"got num_labels={config.num_labels}, problem_type={config.problem_type!r}. Set num_labels to the "
                "number of classes, 2 or more (2 for a binary task), and leave problem_type unset."
            )
        layers: list[nn.Module] = []
        width = config.input_size
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple[torch.Tensor, ...]:
        """Returns ``logits`` of shape ``(batch, num_labels)``, and the mean cross-entropy ``loss`` given ``labels``."""
        if input_values.dim() != 2 or input_values.shape[-1] != self.config.input_size:
            raise ValueError(
                f"Expected input_values of shape (batch, {self.config.input_size}), got {tuple(input_values.shape)}."
            )
        logits = self.classifier(self.body(input_values.to(self.classifier.weight.dtype)))
        loss = nn.functional.cross_entropy(logits, labels.long()) if labels is not None else None
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if not return_dict:
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)
