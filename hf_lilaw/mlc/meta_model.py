"""The label correction network (MLC's meta model)."""

import torch
from torch import Tensor, nn

__all__ = ["LabelCorrectionNetwork"]


class LabelCorrectionNetwork(nn.Module):
    """Maps (penultimate features, noisy label) to a soft corrected label.

    `[h.detach(), embed(ỹ)] → Linear(d+e, k) → Tanh → Linear(k, k) → Tanh → Linear(k, C) → softmax`.

    Args:
        feature_dim: Size `d` of the main model's penultimate features.
        num_labels: Number of classes `C`.
        label_embedding_dim: Size `e` of the noisy-label embedding.
        hidden_dim: Width `k` of the two hidden layers.
    """

    def __init__(self, *, feature_dim: int, num_labels: int, label_embedding_dim: int = 128, hidden_dim: int = 128):
        super().__init__()
        self.feature_dim = feature_dim
        self.num_labels = num_labels
        self.label_embedding = nn.Embedding(num_labels, label_embedding_dim)
        self.net = nn.Sequential(
            nn.Linear(feature_dim + label_embedding_dim, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, num_labels),
        )
        # nn.Embedding's N(0, 1) init would give the label a norm of ~sqrt(e) and saturate the first Tanh.
        nn.init.xavier_uniform_(self.label_embedding.weight)

    def logits(self, features: Tensor, labels: Tensor) -> Tensor:
        """Unnormalised scores of the corrected label, `(batch, C)`."""
        if features.dim() != 2 or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"Expected features of shape (batch, {self.feature_dim}), got {tuple(features.shape)}; the "
                "feature module must give the same pooled features as when the meta model was built."
            )
        # Detached: the main model gets no gradient through the meta model (MLC's gradient-stopped features).
        x = torch.cat([features.detach().to(self.label_embedding.weight.dtype), self.label_embedding(labels)], -1)
        return self.net(x)

    def log_probs(self, features: Tensor, labels: Tensor) -> Tensor:
        """Log of the soft corrected label, `(batch, C)`."""
        return torch.log_softmax(self.logits(features, labels).float(), dim=-1)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Soft corrected labels (rows sum to one), `(batch, C)`."""
        return torch.softmax(self.logits(features, labels).float(), dim=-1)
