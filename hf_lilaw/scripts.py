"""Helpers for command-line training scripts such as the examples: their flags (or a JSON or YAML file of them),
the noise map of ``--noise_rules``, the ``--push_to_hub`` check and the checkpoints ``--resume_from_checkpoint``
resumes. Their errors name the flags."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .core.checkpoint import (
    FSDP_OPTIMIZER_FILES, RNG_STATE_FILES, SCHEDULER_FILE, checkpoint_problem, find_resumable_checkpoint, missing_files,
    resume_advice,
)  # fmt: skip
from .data.registry import dataset_key
from .noise import DEPRECATED_LABEL_NOISE_TYPES, PAIR_FLIP_MAPS, RULE_MAPS

if TYPE_CHECKING:
    from transformers import TrainingArguments

__all__ = [
    "NOISE_RULES_HELP", "check_push_to_hub", "check_seeds", "meta_carve", "noise_name", "noise_rules", "noise_summary",
    "parse_script_args", "resume_checkpoints",
]

NOISE_RULES_HELP = (
    "The map of --noise_type pair_flip or rule_map: a key of hf_lilaw.noise.PAIR_FLIP_MAPS / RULE_MAPS, or a JSON "
    "map ('{\"0\": 1, \"1\": 0}' for pair_flip, '{\"0\": [1]}' for rule_map). Default: the data set's own map where "
    "hf_lilaw has one; else pair_flip moves y to (y + 1) mod K and rule_map needs this flag."
)
# scikit-learn's digits have MNIST's classes: without a rule map of their own they take MNIST's.
_MAP_OF_DATASET = {"digits": "mnist"}


def parse_script_args(
    script_arguments: type, configs: Mapping[str, type], *, defaults: Mapping[str, Any], args: list[str] | None = None
) -> tuple[Any, Any]:
    """``(script arguments, config)`` of a script whose ``--method`` (a key of ``configs``) picks its config class.

    ``args`` (default: the command line) are flags, or, as in transformers' example scripts, a JSON or YAML file
    of the same settings by field name (``{"method": "elr", "seeds": [0], "max_steps": 100}``; null keeps a
    default), optionally followed by flags that override it. ``defaults`` are the script's own defaults for
    fields of either dataclass.
    """
    from transformers import HfArgumentParser

    args = sys.argv[1:] if args is None else list(args)
    if args and args[0].endswith((".json", ".yaml", ".yml")) and not args[0].startswith("-"):
        args = _settings_as_flags(args[0]) + args[1:]
    method = argparse.ArgumentParser(add_help=False)
    default = script_arguments.__dataclass_fields__["method"].default
    method.add_argument("--method", default=default, choices=list(configs))
    parser = HfArgumentParser((script_arguments, configs[method.parse_known_args(args)[0].method]))
    parser.set_defaults(**defaults)
    return parser.parse_args_into_dataclasses(args=args)


def _settings_as_flags(path: str) -> list[str]:
    """A JSON or YAML file's settings as the flags that give them, so they are parsed, checked and defaulted as
    flags are (HfArgumentParser.parse_json_file would skip the script's defaults and every type conversion)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as file:
            settings = json.load(file) if path.endswith(".json") else yaml.safe_load(file)
    except (OSError, ValueError, yaml.YAMLError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: cannot read the settings file ({error}).") from error
    if not isinstance(settings, dict):
        raise ValueError(
            f"{path}: a settings file holds one mapping of field names to values, e.g. "
            f'{{"method": "lilaw", "seeds": [0]}}; got {type(settings).__name__}.'
        )
    flags = []
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = [str(value).lower()]
        elif isinstance(value, dict):  # --noise_rules, TrainingArguments' dict fields: their JSON text
            value = [json.dumps(value)]
        elif isinstance(value, (list, tuple)):
            value = [str(v) for v in value]
        else:
            value = [str(value)]
        flags += [f"--{key}", *value]
    return flags


def noise_rules(noise_type: str, *, dataset: str, rules: str | None) -> str | dict | None:
    """``rules=`` for `add_label_noise`: the map of pair_flip or rule_map noise (None for the other types).

    ``rules`` is the ``--noise_rules`` flag (a map's name or JSON); without it, ``dataset``'s own map if it has one.
    """
    kind = DEPRECATED_LABEL_NOISE_TYPES.get(noise_type, noise_type)
    if kind not in ("pair_flip", "rule_map"):
        if rules is not None:
            raise ValueError(f"--noise_rules is for --noise_type pair_flip or rule_map, not {noise_type!r}.")
        return None
    if rules is not None:
        if rules.lstrip().startswith("{"):
            try:
                return {int(source): target for source, target in json.loads(rules).items()}
            except ValueError as error:  # json.JSONDecodeError is one
                raise ValueError(
                    f"--noise_rules {rules}: not a JSON map from class indices ({error}). Quote the keys, e.g. "
                    '\'{"0": 6, "6": 0}\' for pair_flip or \'{"0": [6]}\' for rule_map.'
                ) from error
        return rules
    maps = PAIR_FLIP_MAPS if kind == "pair_flip" else RULE_MAPS
    key = dataset_key(dataset)  # the registry's spelling: "fashion-mnist" and "CIFAR10" load, so they have maps
    name = next((name for name in (key, _MAP_OF_DATASET.get(key)) if name in maps), None)
    if name is None and kind == "rule_map":
        raise ValueError(
            f"--noise_type {noise_type} needs --noise_rules for --dataset {dataset}: a key of "
            f"hf_lilaw.noise.RULE_MAPS ({', '.join(sorted(RULE_MAPS))}) or a JSON map such as '{{\"0\": [1]}}'."
        )
    return name


def noise_name(noise_type: str, *, dataset: str, rules: str | None) -> str:
    """The noise type with the map `noise_rules` gives it, for the log, the model card and comparison.json."""
    used = noise_rules(noise_type, dataset=dataset, rules=rules)
    if DEPRECATED_LABEL_NOISE_TYPES.get(noise_type, noise_type) not in ("pair_flip", "rule_map"):
        return noise_type
    if used is None:
        return f"{noise_type} (y → (y + 1) mod K)"
    return f"{noise_type} (map {used if isinstance(used, str) else json.dumps(used)})"


def check_seeds(training_args: TrainingArguments, *, seeds: list[int]) -> None:
    """Refuses a ``--seed`` that a script running one run per ``--seeds`` would silently ignore, and a seed given
    twice in ``--seeds`` (it would train into the same run folders again and count once in the comparison)."""
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ValueError(
            f"--seeds {' '.join(map(str, seeds))} repeats {', '.join(map(str, repeated))}: a repeated seed trains into "
            f"the same run folders again and counts once in the comparison. Pass each seed once (e.g. --seeds "
            f"{' '.join(map(str, dict.fromkeys(seeds)))})."
        )
    default = type(training_args).__dataclass_fields__["seed"].default
    if training_args.seed != default and training_args.seed not in seeds:
        raise ValueError(
            f"--seed {training_args.seed} would be ignored: this script makes one run per --seeds "
            f"({' '.join(map(str, seeds))}), each seeded by its own. Pass --seeds {training_args.seed} instead."
        )


def check_push_to_hub(training_args: TrainingArguments, *, seeds: list[int]) -> None:
    """Refuses --push_to_hub before any training: with several seeds, an invalid Hub repo id (``--hub_model_id``,
    else the name of ``--output_dir``, as the examples and Trainer derive it), or unless the Hub accepts the login."""
    if not training_args.push_to_hub:
        return
    if len(seeds) > 1:
        raise ValueError("--push_to_hub uploads one model: pass a single seed (--seeds 0) with it.")
    from huggingface_hub import constants, get_token
    from huggingface_hub.utils import (
        HFValidationError, build_hf_headers, get_session, hf_raise_for_status, validate_repo_id,
    )  # fmt: skip

    # Offline, so an invalid name fails here and not when the method's trainer is built, after the baseline.
    repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        source = "--hub_model_id" if training_args.hub_model_id else f"the name of --output_dir {training_args.output_dir}"
        raise ValueError(
            f"--push_to_hub would create the Hub repo {repo_id!r} ({source}), not a valid Hub repo id: {error} Pass "
            "--hub_model_id with a name of letters, digits, '-', '_' and '.' (e.g. --hub_model_id my-model or "
            "my-org/my-model), or drop --push_to_hub."
        ) from error
    token = training_args.hub_token or get_token()
    try:
        if token is None:
            raise LookupError("no Hub token found")
        # HfApi.whoami, but with a time limit: without network it would wait as long as the connection does.
        url = f"{constants.ENDPOINT}/api/whoami-v2"
        hf_raise_for_status(get_session().get(url, headers=build_hf_headers(token=token), timeout=10))
    except Exception as error:  # no token, offline mode, no network, a refused token: all end the same way
        raise ValueError(
            f"--push_to_hub needs a Hub login and network: run `hf auth login` or drop --push_to_hub ({error})"
        ) from error


def resume_checkpoints(
    resume: str | None, *, run_dirs: list[str], save_only_model: bool = False
) -> dict[str, str | None]:
    """The checkpoint each run (by its output folder) resumes from under ``--resume_from_checkpoint``.

    ``true`` resumes every run from the newest ``checkpoint-*`` of its folder that verifies (as hf_lilaw's
    ``train(resume_from_checkpoint=True)`` picks it, `find_resumable_checkpoint`: a folder whose save was cut short
    is skipped, the reason logged); runs without one start from step 0. A checkpoint path resumes the run whose
    folder holds it from there (with a single run, any checkpoint folder), the other runs as with ``true``. Raises
    before any training when there is nothing to resume, the path is not one run's or it does not verify.

    Unless ``save_only_model`` (``--save_only_model``: checkpoints of weights only), a checkpoint verifies only with
    the optimizer, LR scheduler and RNG states Trainer needs to go on as the run would have: a plain `Trainer` (the
    examples' baseline) writes no manifest and would resume silently without them, with fresh ones.
    """
    if resume is None or resume.lower() == "false":
        return dict.fromkeys(run_dirs)
    required = [] if save_only_model else [FSDP_OPTIMIZER_FILES, SCHEDULER_FILE, RNG_STATE_FILES]
    # Not transformers' get_last_checkpoint: it takes the newest folder, even one a kill left half-written.
    start = {run: find_resumable_checkpoint(run, required_files=required) for run in run_dirs}
    if resume.lower() != "true":
        if not os.path.isdir(resume):
            raise ValueError(f"--resume_from_checkpoint {resume}: no such folder. Pass a checkpoint-* folder or true.")
        parent = os.path.dirname(os.path.abspath(resume))
        owners = run_dirs if len(run_dirs) == 1 else [run for run in run_dirs if os.path.abspath(run) == parent]
        if not owners:
            raise ValueError(
                f"--resume_from_checkpoint {resume} is a checkpoint of none of this command's {len(run_dirs)} runs "
                f"({', '.join(run_dirs)}): pass a checkpoint-* folder of one of them, or true to resume each run "
                "from its own last checkpoint."
            )
        problem = checkpoint_problem(resume, required_files=required)
        if problem is not None:
            weights_only = bool(missing_files(resume, [FSDP_OPTIMIZER_FILES]))
            raise ValueError(
                f"--resume_from_checkpoint {resume}: cannot resume from it: {problem}. "
                + resume_advice(resume, required_files=required)
                + (
                    " If it was saved with --save_only_model (weights only), pass --save_only_model to resume from "
                    "its weights with a fresh optimizer and LR schedule."
                    if weights_only
                    else ""
                )
            )
        start[owners[0]] = resume
    elif not any(start.values()):
        raise ValueError(
            f"--resume_from_checkpoint true: no checkpoint-* folder in {', '.join(run_dirs)} verifies (any skipped is "
            "logged above, with why). Runs save checkpoints only with --save_strategy steps or epoch (this script's "
            "default is no); check --output_dir and --seeds, or drop --resume_from_checkpoint."
        )
    for run, checkpoint in start.items():
        print(f"{run}: resuming from {checkpoint}" if checkpoint else f"{run}: no checkpoint that verifies, from step 0")
    return start


def meta_carve(training_args: TrainingArguments, *, method: str) -> dict[str, Any]:
    """The meta-split arguments of `load_classification_dataset` for an example's run: LiLAW's meta set is the
    validation split, so under ``--method lilaw`` its ``--lilaw_meta_fraction`` and ``--lilaw_seed`` carve that
    split, for every trainer of the run; other methods keep the loader's carve."""
    if method != "lilaw":
        return {}
    return {"meta_fraction": training_args.lilaw_meta_fraction, "meta_seed": training_args.lilaw_seed}


def noise_summary(
    noise: str, *, requested: float, per_seed: Mapping[Any, Mapping[str, Any]]
) -> tuple[dict[str, float], str]:
    """``(realised, phrase)``: the realised noise rates of ``train`` and ``validation``, means over the seeds'
    records (each ``record["realised_noise_rate"]``), and the summary line's phrase that gives them beside the rate
    asked for (a noise type can flip fewer rows than asked: rule_map leaves classes without a rule alone)."""
    realised = {
        split: sum(record["realised_noise_rate"][split] for record in per_seed.values()) / len(per_seed)
        for split in ("train", "validation")
    }
    over_seeds = " (mean over seeds)" if len(per_seed) > 1 else ""
    phrase = (
        f"{noise} noise at {requested:.0%} requested, realised {realised['train']:.1%} of train and "
        f"{realised['validation']:.1%} of validation{over_seeds}"
    )
    return realised, phrase
