"""The label correction network (MLC's meta model)."""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LabelCorrectionNetwork"]


class LabelCorrectionNetwork(nn.Module):
    """Maps (penultimate features, noisy label) to a soft corrected label.

    `[h.detach(), embed(ỹ)] → Linear(d+e, k) → Tanh → Linear(k, k) → Tanh → Linear(k, C [+1]) → softmax`.

    Initialisation follows MLC's released meta network: Xavier-normal weights and zero biases in the three linear
    layers. With `skip_gate=True` the last layer has one more output `s` and the corrected label is
    `(1 − g)·softmax + g·onehot(ỹ)` with `g = sigmoid(s)` (MLC's optional skip connection): the network can then keep
    the given label instead of having to re-learn it.

    Args:
        feature_dim: Size `d` of the main model's penultimate features.
        num_labels: Number of classes `C`.
        label_embedding_dim: Size `e` of the noisy-label embedding.
        hidden_dim: Width `k` of the two hidden layers.
        skip_gate: Add the gate `g` towards the given label.
        skip_gate_init: With the gate, its initial value `g₀` in (0, 1): the gate output's bias starts at
            `logit(g₀)`, so the corrected labels start close to the given ones (`None`: a zero bias, MLC's released
            initialisation, `g` near 0.5).
        label_embedding_init: `"xavier_uniform"` (MLC's released code; keeps the embedding on the scale of the
            features) or `"normal"` (PyTorch's N(0, 1) default, which EBOMLC's released code keeps).
    """

    def __init__(
        self,
        *,
        feature_dim: int,
        num_labels: int,
        label_embedding_dim: int = 128,
        hidden_dim: int = 128,
        skip_gate: bool = False,
        skip_gate_init: float | None = None,
        label_embedding_init: Literal["xavier_uniform", "normal"] = "xavier_uniform",
    ):
        super().__init__()
        self.feature_dim = feature_dim
        self.num_labels = num_labels
        self.skip_gate = skip_gate
        self.label_embedding = nn.Embedding(num_labels, label_embedding_dim)
        self.net = nn.Sequential(
            nn.Linear(feature_dim + label_embedding_dim, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, num_labels + int(skip_gate)),
        )
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
        if skip_gate_init is not None:
            if not skip_gate:
                raise ValueError("skip_gate_init needs skip_gate=True: the network has no gate to initialise.")
            if not 0.0 < skip_gate_init < 1.0:
                raise ValueError(f"skip_gate_init must lie strictly between 0 and 1, got {skip_gate_init}.")
            with torch.no_grad():
                self.net[-1].bias[-1] = math.log(skip_gate_init / (1.0 - skip_gate_init))
        if label_embedding_init == "xavier_uniform":
            nn.init.xavier_uniform_(self.label_embedding.weight)
        elif label_embedding_init != "normal":
            raise ValueError(f"label_embedding_init must be 'xavier_uniform' or 'normal', got {label_embedding_init!r}.")

    def gate_and_logits(self, features: Tensor, labels: Tensor) -> tuple[Tensor | None, Tensor]:
        """The gate `g` `(batch, 1)` (`None` without the skip gate) and the class scores `(batch, C)`."""
        if features.dim() != 2 or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"Expected features of shape (batch, {self.feature_dim}), got {tuple(features.shape)}; the "
                "feature module must give the same pooled features as when the meta model was built."
            )
        # Detached: the main model gets no gradient through the meta model (MLC's gradient-stopped features).
        x = torch.cat([features.detach().to(self.label_embedding.weight.dtype), self.label_embedding(labels)], -1)
        out = self.net(x).float()
        if not self.skip_gate:
            return None, out
        return torch.sigmoid(out[:, self.num_labels :]), out[:, : self.num_labels]

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Soft corrected labels (rows sum to one), `(batch, C)`."""
        gate, logits = self.gate_and_logits(features, labels)
        probs = torch.softmax(logits, dim=-1)
        if gate is None:
            return probs
        return (1.0 - gate) * probs + gate * F.one_hot(labels, self.num_labels).to(probs.dtype)

    def log_probs(self, features: Tensor, labels: Tensor) -> Tensor:
        """Log of the soft corrected label, `(batch, C)`."""
        gate, logits = self.gate_and_logits(features, labels)
        log_p = torch.log_softmax(logits, dim=-1)
        if gate is None:
            return log_p
        # The mixture has no closed-form log; the clamp keeps a vanishing class finite.
        mixed = (1.0 - gate) * log_p.exp() + gate * F.one_hot(labels, self.num_labels).to(log_p.dtype)
        return torch.log(mixed.clamp_min(torch.finfo(log_p.dtype).tiny))
