import pytest
from transformers import HfArgumentParser

from hf_lilaw.elr import ELRConfig


def test_command_line_through_hfargumentparser(tmp_path):
    (args,) = HfArgumentParser(ELRConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--elr_lambda", "7", "--elr_beta", "0.9", "--elr_num_samples", "1000",
         "--elr_targets_on_cpu", "--report_to", "none"]
    )
    assert (args.elr_lambda, args.elr_beta, args.elr_num_samples, args.elr_targets_on_cpu) == (7.0, 0.9, 1000, True)


def test_defaults_are_the_authors_cifar10_setting_and_every_field_is_documented(tmp_path):
    args = ELRConfig(output_dir=str(tmp_path))
    assert (args.elr_lambda, args.elr_beta) == (3.0, 0.7)
    assert args.elr_num_samples is None and args.elr_targets_on_cpu is False
    fields = [f for f in ELRConfig.__dataclass_fields__.values() if f.name.startswith("elr_")]
    assert len(fields) == 4
    assert all(f.metadata.get("help") for f in fields)
    assert all(f.name in ELRConfig.__doc__ for f in fields)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"elr_lambda": -1.0}, "elr_lambda must be a finite number >= 0"),
        ({"elr_lambda": float("nan")}, "elr_lambda must be a finite number >= 0"),
        ({"elr_lambda": float("inf")}, "elr_lambda must be a finite number >= 0"),
        ({"elr_beta": 1.0}, r"elr_beta must be in \[0, 1\) .* never move"),
        ({"elr_beta": -0.1}, r"elr_beta must be in \[0, 1\)"),
        ({"elr_beta": float("nan")}, r"elr_beta must be in \[0, 1\)"),
        ({"elr_num_samples": 0}, "elr_num_samples must be a positive integer"),
        ({"elr_num_samples": 2.5}, "elr_num_samples must be a positive integer"),
        ({"elr_targets_on_cpu": "yes"}, "elr_targets_on_cpu must be True or False"),
    ],
)
def test_bad_values_name_the_field(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        ELRConfig(output_dir=str(tmp_path), **overrides)


def test_boundaries_are_accepted(tmp_path):
    args = ELRConfig(output_dir=str(tmp_path), elr_lambda=0.0, elr_beta=0.0, elr_num_samples=1)
    assert (args.elr_lambda, args.elr_beta, args.elr_num_samples) == (0.0, 0.0, 1)
