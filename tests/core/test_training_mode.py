import pytest
from torch import nn
from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

from hf_lilaw.core.training_mode import set_training_mode


class FrozenNorm(nn.Module):
    """Overrides train(): its batch norm stays in eval mode (a common fine-tuning pattern)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(4)
        self.calls = []

    def train(self, mode: bool = True):
        self.calls.append(mode)
        super().train(mode)
        self.norm.eval()
        return self


def _flags(model: nn.Module) -> list[tuple[str, bool]]:
    return [(name, module.training) for name, module in model.named_modules()]


def _models() -> list[nn.Module]:
    mixed = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(4), FrozenNorm()), None)
    mixed[2][0].eval()  # start from a mixed state
    hub = TimmWrapperForImageClassification(TimmWrapperConfig(architecture="test_resnet", num_labels=3))
    hub.timm_model.eval()
    return [mixed, hub]


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("modes", [(False,), (True,), (False, True), (True, False, True)])
def test_same_flags_as_module_train(index, modes):
    reference, fast = _models()[index], _models()[index]
    assert _flags(reference) == _flags(fast)
    for mode in modes:
        reference.train(mode)
        set_training_mode(fast, mode)
        assert _flags(fast) == _flags(reference)


def test_overridden_train_still_runs():
    model = nn.Sequential(nn.Linear(4, 4), FrozenNorm())
    set_training_mode(model, False)
    set_training_mode(model, True)
    assert model[1].calls == [False, True]
    assert model.training and model[0].training and model[1].training and not model[1].norm.training


def test_hub_model_with_kernels_uses_its_own_train(monkeypatch):
    model = TimmWrapperForImageClassification(TimmWrapperConfig(architecture="test_resnet", num_labels=3))
    recast = []
    monkeypatch.setattr(model, "set_use_kernels", lambda use, *a, **k: recast.append(use), raising=False)
    set_training_mode(model, False)  # no kernels: nothing to re-cast
    assert recast == [] and not any(m.training for m in model.modules())
    # As after from_pretrained(..., use_kernels=True): PreTrainedModel.train re-casts them on a mode change.
    monkeypatch.setattr(type(model), "use_kernels", property(lambda self: True))
    set_training_mode(model, True)
    assert recast == [True] and all(m.training for m in model.modules())


def test_mode_must_be_a_bool():
    with pytest.raises(ValueError, match="mode must be a bool"):
        set_training_mode(nn.Linear(2, 2), 1)
