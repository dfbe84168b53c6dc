"""hf_lilaw.scripts: the helpers of the command-line scripts (the examples run them end to end in test_examples)."""

import logging
import os
import shutil
import time

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import save as safetensors_bytes
from torch.nn.functional import cross_entropy
from transformers import Trainer, TrainingArguments

from conftest import StopAfter, TinyNet, blobs

from hf_lilaw.core.checkpoint import begin_checkpoint, write_manifest
from hf_lilaw.noise import PAIR_FLIP_MAPS, RULE_MAPS
from hf_lilaw.scripts import check_push_to_hub, check_seeds, noise_name, noise_rules, resume_checkpoints


def make_checkpoint(folder, *, manifest=True):
    """A checkpoint folder that verifies: a trainer state, whole weights, Trainer's optimizer, scheduler and RNG
    states and (like hf_lilaw's) a manifest."""
    os.makedirs(folder)
    with open(os.path.join(folder, "trainer_state.json"), "w") as file:
        file.write("{}")
    with open(os.path.join(folder, "model.safetensors"), "wb") as file:
        file.write(safetensors_bytes({"w": torch.zeros(4)}))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({"state": 1}, os.path.join(folder, name))
    if manifest:
        write_manifest(folder)


def test_resume_checkpoints_refuses_what_it_cannot_resume(tmp_path):
    runs = [str(tmp_path / "seed_0" / "trainer"), str(tmp_path / "seed_0" / "lilaw"), str(tmp_path / "seed_1" / "lilaw")]
    assert resume_checkpoints(None, run_dirs=runs) == dict.fromkeys(runs)
    assert resume_checkpoints("false", run_dirs=runs) == dict.fromkeys(runs)
    with pytest.raises(ValueError, match=r"--resume_from_checkpoint true: no checkpoint-\* folder in .*--save_strategy"):
        resume_checkpoints("true", run_dirs=runs)
    (tmp_path / "seed_0" / "trainer" / "checkpoint-1").mkdir(parents=True)  # empty: it does not verify
    with pytest.raises(ValueError, match=r"--resume_from_checkpoint true: no checkpoint-\* folder in .* verifies"):
        resume_checkpoints("true", run_dirs=runs)
    for checkpoint in ("seed_0/trainer/checkpoint-2", "seed_0/trainer/checkpoint-10", "seed_0/lilaw/checkpoint-4"):
        make_checkpoint(tmp_path / checkpoint, manifest=checkpoint.startswith("seed_0/lilaw"))  # Trainer writes none
    assert resume_checkpoints("True", run_dirs=runs) == {
        runs[0]: f"{runs[0]}/checkpoint-10", runs[1]: f"{runs[1]}/checkpoint-4", runs[2]: None,
    }  # fmt: skip
    # a path resumes its own run from there, the others from their last checkpoints
    assert resume_checkpoints(f"{runs[0]}/checkpoint-2", run_dirs=runs) == {
        runs[0]: f"{runs[0]}/checkpoint-2", runs[1]: f"{runs[1]}/checkpoint-4", runs[2]: None,
    }  # fmt: skip
    elsewhere = tmp_path / "other" / "checkpoint-3"
    make_checkpoint(elsewhere)
    with pytest.raises(ValueError, match=r"is a checkpoint of none of this command's 3 runs"):
        resume_checkpoints(str(elsewhere), run_dirs=runs)
    assert resume_checkpoints(str(elsewhere), run_dirs=runs[:1]) == {runs[0]: str(elsewhere)}  # one run: any checkpoint
    with pytest.raises(ValueError, match="no such folder"):
        resume_checkpoints(str(tmp_path / "missing"), run_dirs=runs)


def test_resume_checkpoints_prints_where_each_run_starts(tmp_path, capsys):
    runs = [str(tmp_path / "trainer"), str(tmp_path / "lilaw")]
    make_checkpoint(tmp_path / "trainer" / "checkpoint-2")
    resume_checkpoints("true", run_dirs=runs)
    assert capsys.readouterr().out.splitlines() == [
        f"{runs[0]}: resuming from {runs[0]}/checkpoint-2", f"{runs[1]}: no checkpoint that verifies, from step 0",
    ]  # fmt: skip


def test_resume_true_skips_a_checkpoint_whose_save_was_cut_short(tmp_path, caplog):
    """As train(resume_from_checkpoint=True) does: the examples' --resume_from_checkpoint true took the newest folder
    (transformers' get_last_checkpoint), so a run killed while saving failed to resume in exactly that case."""
    run = str(tmp_path / "lilaw")
    make_checkpoint(f"{run}/checkpoint-2")
    make_checkpoint(f"{run}/checkpoint-4")
    begin_checkpoint(f"{run}/checkpoint-4")  # killed while saving again into checkpoint-4
    with open(f"{run}/checkpoint-4/optimizer.pt", "r+b") as file:
        file.truncate(10)
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        assert resume_checkpoints("true", run_dirs=[run]) == {run: f"{run}/checkpoint-2"}
    assert f"Skipping checkpoint {run}/checkpoint-4: its save began but did not finish" in caplog.text
    shutil.rmtree(f"{run}/checkpoint-2")  # nothing of this run verifies: it starts from step 0, as a run without one
    make_checkpoint(str(tmp_path / "trainer" / "checkpoint-2"))
    assert resume_checkpoints("true", run_dirs=[str(tmp_path / "trainer"), run])[run] is None


def _train_plain(output_dir, *, resume=None, stop_after=None):
    """A plain Trainer run (the examples' baseline) of 6 steps, a checkpoint every 2; returns its final weights."""
    torch.manual_seed(0)
    model = TinyNet()
    args = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=16, max_steps=6, learning_rate=0.05, save_steps=2,
        save_strategy="steps", report_to=[], disable_tqdm=True, seed=0, use_cpu=True, logging_steps=100,
    )  # fmt: skip
    Trainer(
        model=model, args=args, train_dataset=blobs(96), callbacks=[StopAfter(stop_after)] if stop_after else None,
        compute_loss_func=lambda outputs, labels, num_items_in_batch=None: cross_entropy(outputs["logits"], labels),
    ).train(resume_from_checkpoint=resume)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_a_plain_trainer_checkpoint_without_its_optimizer_state_is_not_resumed(tmp_path, caplog):
    """A plain Trainer checkpoint (no manifest) without optimizer.pt was taken: Trainer resumed silently with a
    fresh optimizer, and the run ended with other weights than the uninterrupted one."""
    full = _train_plain(tmp_path / "full")
    run = tmp_path / "trainer"
    _train_plain(run, stop_after=4)
    os.remove(run / "checkpoint-4" / "optimizer.pt")
    with pytest.raises(ValueError) as error:
        resume_checkpoints(str(run / "checkpoint-4"), run_dirs=[str(run)])
    assert str(error.value).startswith(
        f"--resume_from_checkpoint {run}/checkpoint-4: cannot resume from it: optimizer.pt is missing"
    )
    assert f"resume_from_checkpoint='{run}/checkpoint-2'" in str(error.value)
    assert "pass --save_only_model" in str(error.value)
    assert resume_checkpoints(str(run / "checkpoint-4"), run_dirs=[str(run)], save_only_model=True) == {
        str(run): str(run / "checkpoint-4")
    }  # weights only, as asked
    with caplog.at_level(logging.WARNING, logger="hf_lilaw.core.checkpoint"):
        start = resume_checkpoints("true", run_dirs=[str(run)])
    assert start == {str(run): str(run / "checkpoint-2")}
    assert f"Skipping checkpoint {run}/checkpoint-4: optimizer.pt is missing" in caplog.text
    assert torch.equal(_train_plain(run, resume=start[str(run)]), full)
    for name in ("scheduler.pt", "rng_state.pth"):
        shutil.rmtree(run / "checkpoint-2")
        shutil.copytree(run / "checkpoint-6", run / "checkpoint-2")  # a whole one, then one file less
        os.remove(run / "checkpoint-2" / name)
        with pytest.raises(ValueError, match=rf"checkpoint-2: cannot resume from it: (no file matches '{name[:9]}|{name} is missing)"):
            resume_checkpoints(str(run / "checkpoint-2"), run_dirs=[str(run)])


def test_a_seed_the_seeds_flag_would_override_is_refused():
    # --seed 5 ran seeds 0, 1, 2 without a word in the image and time-series examples
    with pytest.raises(ValueError, match=r"^--seed 5 would be ignored: .* \(0 1 2\).*Pass --seeds 5 instead\.$"):
        check_seeds(TrainingArguments(output_dir="unused", seed=5), seeds=[0, 1, 2])
    assert check_seeds(TrainingArguments(output_dir="unused"), seeds=[0, 1, 2]) is None  # --seed left at its default
    assert check_seeds(TrainingArguments(output_dir="unused", seed=5), seeds=[5, 6]) is None
    # --seeds 0 1 0 trained seed 0 twice into the same folders and printed "seeds [0, 1, 0]" over a 2-seed table
    with pytest.raises(ValueError, match=r"^--seeds 0 1 0 repeats 0: .* counts once .* \(e\.g\. --seeds 0 1\)\.$"):
        check_seeds(TrainingArguments(output_dir="unused"), seeds=[0, 1, 0])


def test_push_to_hub_check_refuses_several_seeds_and_passes_without_the_flag():
    with pytest.raises(ValueError, match=r"^--push_to_hub uploads one model: pass a single seed \(--seeds 0\) with it\.$"):
        check_push_to_hub(TrainingArguments(output_dir="unused", push_to_hub=True), seeds=[0, 1])
    assert check_push_to_hub(TrainingArguments(output_dir="unused"), seeds=[0, 1]) is None


def test_push_to_hub_check_with_a_token_but_no_network(monkeypatch):
    """A token is not enough: the check asks the Hub (here in offline mode, as without network) and fails fast."""
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    args = TrainingArguments(output_dir="unused", push_to_hub=True)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"needs a Hub login and network: .*offline mode is enabled"):
        check_push_to_hub(args, seeds=[0])
    assert time.perf_counter() - start < 15



def test_push_to_hub_check_refuses_an_invalid_repo_id_before_the_login(tmp_path, monkeypatch):
    """The repo is --hub_model_id, else --output_dir's folder name (as the examples and Trainer name it): an
    --output_dir 'adult 40%' passed the check and failed when the method's trainer was built, after --compare's
    baseline had trained."""
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the login check, if reached, fails: no network here
    folder = str(tmp_path / "adult 40%")
    with pytest.raises(ValueError, match=r"Hub repo 'adult 40%' \(the name of --output_dir .*Pass --hub_model_id"):
        check_push_to_hub(TrainingArguments(output_dir=folder, push_to_hub=True), seeds=[0])
    with pytest.raises(ValueError, match=r"Hub repo 'me/a--b' \(--hub_model_id\), not a valid Hub repo id"):
        check_push_to_hub(TrainingArguments(output_dir=folder, hub_model_id="me/a--b", push_to_hub=True), seeds=[0])
    # a valid --hub_model_id names the repo whatever the folder is called: on to the login check
    with pytest.raises(ValueError, match="needs a Hub login and network"):
        check_push_to_hub(TrainingArguments(output_dir=folder, hub_model_id="me/adult-40", push_to_hub=True), seeds=[0])

def test_noise_rules_default_to_the_data_sets_map():
    """pair_flip on digits takes their look-alike pairs; rule_map (and its old name instance) MNIST's rule map."""
    assert "digits" in PAIR_FLIP_MAPS and "digits" not in RULE_MAPS and "mnist" in RULE_MAPS
    assert noise_rules("pair_flip", dataset="digits", rules=None) == "digits"
    assert noise_rules("rule_map", dataset="digits", rules=None) == "mnist"
    assert noise_rules("instance", dataset="digits", rules=None) == "mnist"
    assert noise_rules("pair_flip", dataset="fashion_mnist", rules=None) == "fashion_mnist"
    assert noise_rules("pair_flip", dataset="synthetic_adult", rules=None) is None  # (y + 1) mod K
    assert noise_rules("uniform", dataset="digits", rules=None) is None
    assert noise_name("pair_flip", dataset="digits", rules=None) == "pair_flip (map digits)"
    assert noise_name("pair_flip", dataset="synthetic_adult", rules=None) == "pair_flip (y → (y + 1) mod K)"
    assert noise_name("uniform", dataset="digits", rules=None) == "uniform"


def test_noise_rules_take_the_map_of_every_spelling_the_registry_accepts():
    for spelling in ("fashion-mnist", "Fashion_MNIST"):
        assert noise_rules("pair_flip", dataset=spelling, rules=None) == "fashion_mnist"
        assert noise_rules("rule_map", dataset=spelling, rules=None) == "fashion_mnist"
    assert noise_rules("pair_flip", dataset="CIFAR10", rules=None) == "cifar10"
    assert noise_rules("rule_map", dataset="Digits", rules=None) == "mnist"
    assert noise_name("pair_flip", dataset="CIFAR10", rules=None) == "pair_flip (map cifar10)"


def test_noise_rules_flag_takes_a_map_by_name_or_as_json():
    assert noise_rules("pair_flip", dataset="digits", rules='{"0": 1, "1": 0}') == {0: 1, 1: 0}
    for bad in ('{0: 6, 6: 0}', '{"zero": 6}'):  # a raw JSONDecodeError / int() error before, naming no flag
        with pytest.raises(ValueError, match=r"^--noise_rules \{.*not a JSON map from class indices.*Quote the keys"):
            noise_rules("pair_flip", dataset="digits", rules=bad)
    assert noise_rules("rule_map", dataset="synthetic_adult", rules='{"1": [0]}') == {1: [0]}
    assert noise_rules("rule_map", dataset="synthetic_adult", rules="mnist") == "mnist"
    assert noise_name("rule_map", dataset="synthetic_adult", rules='{"1": [0]}') == 'rule_map (map {"1": [0]})'
    with pytest.raises(ValueError, match=r"--noise_type rule_map needs --noise_rules for --dataset synthetic_adult"):
        noise_rules("rule_map", dataset="synthetic_adult", rules=None)
    with pytest.raises(ValueError, match="--noise_rules is for --noise_type pair_flip or rule_map, not 'uniform'"):
        noise_rules("uniform", dataset="synthetic_adult", rules="mnist")


def test_noise_summary_gives_the_realised_rates_beside_the_requested_one():
    from hf_lilaw.scripts import noise_summary

    per_seed = {0: {"realised_noise_rate": {"train": 0.30, "validation": 0.32}},
                1: {"realised_noise_rate": {"train": 0.34, "validation": 0.30}}}  # fmt: skip
    realised, phrase = noise_summary("rule_map (map mnist)", requested=0.4, per_seed=per_seed)
    assert realised == pytest.approx({"train": 0.32, "validation": 0.31})
    assert phrase == ("rule_map (map mnist) noise at 40% requested, realised 32.0% of train and 31.0% of validation "
                      "(mean over seeds)")  # fmt: skip
    assert noise_summary("uniform", requested=0.4, per_seed={0: per_seed[0]})[1].endswith("30.0% of train and 32.0% of validation")


def test_meta_carve_passes_lilaws_meta_flags_only_to_lilaw_runs():
    from hf_lilaw import LiLAWConfig
    from hf_lilaw.scripts import meta_carve

    args = LiLAWConfig(output_dir="out", lilaw_meta_fraction=0.5, lilaw_seed=3)
    assert meta_carve(args, method="lilaw") == {"meta_fraction": 0.5, "meta_seed": 3}
    assert meta_carve(args, method="elr") == {}


def test_script_args_come_from_flags_or_a_json_or_yaml_file(tmp_path):
    """``python example.py run.json`` (transformers' convention) stopped with "Some specified arguments are not used
    by the HfArgumentParser: ['run.json']". The file's settings now go through the flags' parser: its --method
    picks the config, the script's defaults apply, values are converted, and later flags override them."""
    from dataclasses import dataclass, field

    from hf_lilaw import ELRConfig, LiLAWConfig
    from hf_lilaw.scripts import parse_script_args

    @dataclass
    class Script:
        method: str = "lilaw"
        seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
        compare: bool = False
        noise_rules: str | None = None

    configs = {"lilaw": LiLAWConfig, "elr": ELRConfig}
    defaults = {"output_dir": str(tmp_path / "default"), "remove_unused_columns": False, "learning_rate": 1e-2}
    settings = tmp_path / "run.json"
    settings.write_text(
        '{"method": "elr", "seeds": [3], "compare": true, "noise_rules": {"0": 1}, "elr_lambda": 5, "max_steps": 2}'
    )
    script, args = parse_script_args(Script, configs, defaults=defaults, args=[str(settings)])
    assert isinstance(args, ELRConfig) and (script.method, script.seeds, script.compare) == ("elr", [3], True)
    assert script.noise_rules == '{"0": 1}' and (args.elr_lambda, args.max_steps) == (5.0, 2)
    assert args.output_dir == str(tmp_path / "default") and args.remove_unused_columns is False
    assert args.learning_rate == 1e-2
    script, args = parse_script_args(Script, configs, defaults=defaults, args=[str(settings), "--seeds", "4", "5"])
    assert script.seeds == [4, 5] and isinstance(args, ELRConfig)
    yaml = tmp_path / "run.yaml"
    yaml.write_text("learning_rate: 3e-3\nseeds: null\nlilaw_alpha: 2\n")  # null keeps the default
    script, args = parse_script_args(Script, configs, defaults=defaults, args=[str(yaml)])
    # YAML reads 3e-3 as text: parsed as the flag is, it is the float
    assert isinstance(args, LiLAWConfig) and args.learning_rate == 3e-3 and args.lilaw_alpha == 2.0
    assert script == Script()
    script, args = parse_script_args(Script, configs, defaults=defaults, args=["--method", "elr", "--seeds", "1"])
    assert isinstance(args, ELRConfig) and script.seeds == [1] and args.remove_unused_columns is False
    yaml.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"run\.yaml: a settings file holds one mapping of field names to values"):
        parse_script_args(Script, configs, defaults=defaults, args=[str(yaml)])
    with pytest.raises(ValueError, match=r"missing\.json: cannot read the settings file"):
        parse_script_args(Script, configs, defaults=defaults, args=[str(tmp_path / "missing.json")])
