import json

import pytest
from transformers import HfArgumentParser

from hf_lilaw import LiLAWConfig


def test_command_line_through_hfargumentparser(tmp_path):
    (args,) = HfArgumentParser(LiLAWConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--lilaw_alpha", "9", "--lilaw_beta", "3", "--lilaw_delta", "7",
         "--lilaw_lr", "0.01", "--lilaw_beta_lr", "0.02", "--lilaw_warmup_steps", "100",
         "--lilaw_meta_batch_size", "64", "--lilaw_detach_weights", "--lilaw_meta_forward_mode", "train",
         "--lilaw_base_loss", "focal", "--report_to", "none"]
    )
    assert (args.lilaw_alpha, args.lilaw_beta, args.lilaw_delta) == (9.0, 3.0, 7.0)
    assert args.lilaw_lr == 0.01 and args.lilaw_beta_lr == 0.02 and args.lilaw_alpha_lr is None
    assert args.lilaw_warmup_steps == 100 and args.lilaw_meta_batch_size == 64
    assert args.lilaw_detach_weights is True
    assert args.lilaw_meta_forward_mode == "train" and args.lilaw_base_loss == "focal"


def test_invalid_choice_is_rejected_by_the_parser(tmp_path):
    with pytest.raises(SystemExit):
        HfArgumentParser(LiLAWConfig).parse_args_into_dataclasses(
            ["--output_dir", str(tmp_path), "--lilaw_meta_forward_mode", "sometimes"]
        )


def test_defaults_are_the_papers(tmp_path):
    args = LiLAWConfig(output_dir=str(tmp_path))
    assert (args.lilaw_alpha, args.lilaw_beta, args.lilaw_delta) == (10.0, 2.0, 6.0)
    assert args.lilaw_lr == 0.005 and args.lilaw_weight_decay == 1e-4
    assert args.lilaw_warmup_epochs == 1.0 and args.lilaw_warmup_steps is None
    assert args.lilaw_meta_fraction == 0.15 and args.lilaw_meta_batch_size is None
    assert args.lilaw_detach_weights is False and args.lilaw_meta_forward_mode == "eval"
    every_field_documented = [f for f in LiLAWConfig.__dataclass_fields__.values() if f.name.startswith("lilaw_")]
    assert all(f.metadata.get("help") for f in every_field_documented)
    assert all(f"{f.name}" in LiLAWConfig.__doc__ for f in every_field_documented)


def test_per_parameter_settings_fall_back_to_the_common_one(tmp_path):
    args = LiLAWConfig(output_dir=str(tmp_path), lilaw_lr=0.01, lilaw_beta_lr=0.02, lilaw_delta_weight_decay=0.5)
    assert args.lilaw_per_parameter("lr") == [0.01, 0.02, 0.01]
    assert args.lilaw_per_parameter("weight_decay") == [1e-4, 1e-4, 0.5]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lilaw_alpha": 0.5}, "lilaw_alpha must be >= 1"),
        ({"lilaw_beta": -1.0}, "lilaw_beta must be a finite number"),
        ({"lilaw_delta": float("nan")}, "lilaw_delta must be a finite number"),
        ({"lilaw_beta": 7.0}, "lilaw_delta .* must be >= lilaw_beta"),
        ({"lilaw_weight_decay": -1e-4}, "lilaw_weight_decay"),
        ({"lilaw_delta_weight_decay": float("inf")}, "lilaw_delta_weight_decay"),
        ({"lilaw_meta_fraction": 1.5}, "lilaw_meta_fraction must be in"),
        ({"lilaw_meta_batch_size": 0}, "lilaw_meta_batch_size must be >= 1"),
        ({"lilaw_warmup_steps": -3}, "lilaw_warmup_steps"),
        ({"lilaw_compile": "yes"}, "lilaw_compile must be True, False or None"),
        # None or a string (a settings file read with parse_json_file) raised a TypeError naming no field
        ({"lilaw_alpha": None}, "lilaw_alpha must be a finite number >= 0, got None"),
        ({"lilaw_meta_fraction": "0.2"}, "lilaw_meta_fraction must be a finite number >= 0, got '0.2'"),
        ({"lilaw_gce_q": None}, "lilaw_gce_q must be a finite number >= 0, got None"),
        ({"lilaw_lr": None}, "lilaw_lr must be a finite number >= 0, got None"),
        ({"lilaw_warmup_epochs": True}, "lilaw_warmup_epochs must be a finite number >= 0, got True"),
    ],
)
def test_bad_values_name_the_field(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        LiLAWConfig(output_dir=str(tmp_path), **overrides)


def test_lilaw_compile_follows_torch_compile_unless_set(tmp_path):
    assert not LiLAWConfig(output_dir=str(tmp_path)).lilaw_compiles
    assert LiLAWConfig(output_dir=str(tmp_path), torch_compile=True).lilaw_compiles
    assert not LiLAWConfig(output_dir=str(tmp_path), torch_compile=True, lilaw_compile=False).lilaw_compiles
    assert LiLAWConfig(output_dir=str(tmp_path), lilaw_compile=True).lilaw_compiles


def test_label_smoothing_is_refused_with_the_gce_base_loss(tmp_path):
    """The per-sample GCE loss has no cross-entropy term to smooth: the setting would be silently ignored."""
    with pytest.raises(ValueError) as refused:
        LiLAWConfig(output_dir=str(tmp_path), lilaw_base_loss="gce", label_smoothing_factor=0.1)
    assert str(refused.value) == (
        "label_smoothing_factor=0.1 has no effect with lilaw_base_loss='gce': the generalized cross-entropy has no "
        "cross-entropy term to smooth. Set label_smoothing_factor=0, or pick a base loss that smooths its "
        "cross-entropy term ('cross_entropy', 'focal' or 'sce')."
    )
    for kind in ("cross_entropy", "focal", "sce"):
        assert LiLAWConfig(output_dir=str(tmp_path), lilaw_base_loss=kind, label_smoothing_factor=0.1).lilaw_base_loss == kind
    assert LiLAWConfig(output_dir=str(tmp_path), lilaw_base_loss="gce").label_smoothing_factor == 0.0


def test_a_quoted_false_from_a_settings_file_is_refused_not_read_as_true(tmp_path):
    """``"lilaw_detach_weights": "false"`` in a JSON file reached the trainer as the truthy string 'false', so the
    weights were detached: the opposite of the setting."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"output_dir": str(tmp_path), "lilaw_detach_weights": "false"}))
    with pytest.raises(ValueError) as refused:
        HfArgumentParser(LiLAWConfig).parse_json_file(str(settings))
    assert str(refused.value) == (
        "lilaw_detach_weights must be True or False, got 'false'; in a JSON or YAML file write true or false without "
        "quotes."
    )
    settings.write_text(json.dumps({"output_dir": str(tmp_path), "lilaw_detach_weights": False}))
    assert HfArgumentParser(LiLAWConfig).parse_json_file(str(settings))[0].lilaw_detach_weights is False
