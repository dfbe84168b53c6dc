import json

import pytest
from datasets import Dataset
from torch import nn
from transformers import HfArgumentParser

from hf_lilaw.mlc import EBOMLCTrainer, MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mlc_meta_amsgrad", "mlc_meta_amsgrad must be True or False, got 'false'"),
        ("mlc_skip_gate", "mlc_skip_gate must be True, False or None (per method), got 'false'"),
    ],
)
def test_a_quoted_false_from_a_settings_file_is_refused_not_read_as_true(tmp_path, name, message):
    """A quoted "false" reached the trainer as a truthy string: the meta Adam ran AMSGrad, the skip gate was built."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"output_dir": str(tmp_path), name: "false"}))
    with pytest.raises(ValueError) as refused:
        HfArgumentParser(MetaLabelCorrectionConfig).parse_json_file(str(settings))
    assert str(refused.value) == f"{message}; in a JSON or YAML file write true or false without quotes."
    settings.write_text(json.dumps({"output_dir": str(tmp_path), name: False}))
    (args,) = HfArgumentParser(MetaLabelCorrectionConfig).parse_json_file(str(settings))
    assert getattr(args, name) is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mlc_barrier_threshold": float("nan")}, "mlc_barrier_threshold must be a finite number, got nan."),
        ({"mlc_barrier_scale": float("inf")}, "mlc_barrier_scale must be a finite number, got inf."),
        ({"mlc_method": "mlc_d", "mlc_barrier_eta": float("nan")}, "mlc_barrier_eta must be a finite number, got nan."),
        ({"mlc_meta_lr": float("inf")}, "mlc_meta_lr must be a finite number, got inf."),
        ({"mlc_meta_lr": None}, "mlc_meta_lr must be a finite number, got None."),
        ({"mlc_rho": "0.5"}, "mlc_rho must be a finite number, got '0.5'."),
        ({"mlc_meta_weight_decay": float("inf")}, "mlc_meta_weight_decay must be a finite number, got inf."),
        ({"mlc_method": "mlc_d", "mlc_inner_lr": float("inf")}, "mlc_inner_lr must be a finite number or None, got inf."),
        ({"mlc_lower_loss_weights": [1.0, float("nan")]}, r"mlc_lower_loss_weights must be two finite .* got \[1.0, nan\]"),
        ({"mlc_lower_loss_weights": [float("inf"), 1.0]}, r"mlc_lower_loss_weights must be two finite .* got \[inf, 1.0\]"),
    ],
)
def test_non_finite_or_non_numeric_settings_are_refused_when_built(tmp_path, overrides, message):
    """NaN or inf trained the model to NaN weights while the run logged a loss of 0; None or a string raised a
    TypeError that named no setting."""
    with pytest.raises(ValueError, match=message if "\\" in message else None) as refused:
        MetaLabelCorrectionConfig(output_dir=str(tmp_path), **overrides)
    if "\\" not in message:
        assert str(refused.value) == message


class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.fc = nn.Linear(2, 4), nn.Linear(4, 2)

    def forward(self, x, labels=None):
        return self.fc(self.body(x))


def test_an_inner_step_size_the_spec_ebomlc_step_never_uses_is_refused(tmp_path):
    """EBOMLC's spec look-ahead is a step of the main optimizer: mlc_inner_lr changed nothing in the run, while the
    model card's training snippet listed it."""
    message = (
        "mlc_inner_lr=0.1 is not used by EBOMLC's spec variant, whose look-ahead is a step of the main optimizer at "
        "its own learning rate: drop mlc_inner_lr, or use mlc_ebomlc_variant='released', mlc_method='mlc' or "
        "mlc_method='mlc_d', which take it."
    )
    # mlc_method left at (or set to) its default "ebomlc": the trainer decides the method and refuses it when built.
    data = Dataset.from_dict({"x": [[0.0, 1.0], [1.0, 0.0]], "label": [0, 1]})
    for cls in (MetaLabelCorrectionTrainer, EBOMLCTrainer):
        args = MetaLabelCorrectionConfig(
            output_dir=str(tmp_path), mlc_inner_lr=0.1, per_device_train_batch_size=2, report_to="none"
        )
        with pytest.raises(ValueError) as refused:
            cls(model=_TinyNet(), args=args, train_dataset=data, clean_dataset=data)
        assert str(refused.value) == message
    for settings in ({"mlc_ebomlc_variant": "released"}, {"mlc_method": "mlc"}, {"mlc_method": "mlc_d"}):
        assert MetaLabelCorrectionConfig(output_dir=str(tmp_path), mlc_inner_lr=0.1, **settings).mlc_inner_lr == 0.1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mlc_method": "mlc_d", "mlc_inner_steps": 2.5}, "mlc_inner_steps must be a whole number, got 2.5."),
        ({"mlc_method": "mlc_d", "mlc_inner_steps": True}, "mlc_inner_steps must be a whole number, got True."),
        ({"mlc_clean_batch_size": 3.5}, "mlc_clean_batch_size must be a whole number, got 3.5."),
        ({"mlc_label_embedding_dim": 2.5}, "mlc_label_embedding_dim must be a whole number, got 2.5."),
        ({"mlc_meta_hidden_dim": "64"}, "mlc_meta_hidden_dim must be a whole number, got '64'."),
    ],
)
def test_fractional_counts_are_refused_when_built(tmp_path, overrides, message):
    """mlc_inner_steps=2.5 or mlc_clean_batch_size=3.5 failed in the first step with a TypeError naming no setting."""
    with pytest.raises(ValueError) as refused:
        MetaLabelCorrectionConfig(output_dir=str(tmp_path), **overrides)
    assert str(refused.value) == message


def test_reentrant_gradient_checkpointing_is_refused_when_built(tmp_path):
    """Reentrant checkpointing failed at step 1 inside the meta step's torch.autograd.grad."""
    with pytest.raises(ValueError, match="use_reentrant.*Set use_reentrant to False"):
        MetaLabelCorrectionConfig(
            output_dir=str(tmp_path), gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": True}
        )
    for kwargs in ({"use_reentrant": False}, None):
        args = MetaLabelCorrectionConfig(
            output_dir=str(tmp_path), gradient_checkpointing=True, gradient_checkpointing_kwargs=kwargs
        )
        assert args.gradient_checkpointing
