import json

import pytest
from transformers import HfArgumentParser

from hf_lilaw.mlc import MetaLabelCorrectionConfig


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
