import pytest
from torch import nn

from hf_lilaw.core.training_mode import set_training_mode


class FrozenNorm(nn.Module):
    """Overrides train(): its batch norm stays in eval mode (a common fine-tuning pattern)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(4)

    def train(self, mode: bool = True):
        super().train(mode)
        self.norm.eval()
        return self


def test_is_module_train_with_overrides_honoured():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), FrozenNorm())
    set_training_mode(model, False)
    assert not any(m.training for m in model.modules())
    set_training_mode(model, True)
    assert [m.training for m in model.modules()] == [True, True, True, True, False]


def test_mode_must_be_a_bool():
    with pytest.raises(ValueError, match="mode must be a bool"):
        set_training_mode(nn.Linear(2, 2), 1)
