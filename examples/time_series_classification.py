"""Time-series classification with the paper's stacked LSTM on noisy labels: `LiLAWTrainer` (or `ELRTrainer`).

Offline default: the UCR archive's ItalyPowerDemand (bundled with aeon: 2 classes, 24 steps, the archive's own
67 training and 1,029 test series; 15 % of the training split is held out as validation) through
`hf_lilaw.data.load_ucr`, with 30 % of the training and validation labels flipped; a 2-layer LSTM of 32 units,
60 epochs at learning rate 0.01, seeds 0, 1, 2; ``--compare`` also trains plain `transformers.Trainer` from the
same weights, data, seed and schedule:

    python examples/time_series_classification.py --compare
    python examples/time_series_classification.py --compare --method elr

Any other UCR/UEA set by name (aeon bundles ArrowHead, GunPoint, OSULeaf, ACSF1, BasicMotions, ...; others are
downloaded by aeon on first use); long series can be resampled with --length:

    python examples/time_series_classification.py --compare --dataset ucr/OSULeaf --length 128

Input noise instead of label noise (labels kept, series corrupted):

    python examples/time_series_classification.py --compare --noise_type ts_covariate --noise_rate 0.3

The paper's ECG5000 (UCR archive files, downloaded by you), close to the paper's setting (500 epochs,
batch 512, learning rate 0.001):

    python examples/time_series_classification.py --compare --dataset ecg5000 --data_dir path/to/ECG5000 \\
        --num_train_epochs 500 --per_device_train_batch_size 512 --learning_rate 1e-3

Splits: ``train`` (noisy) trains the model; ``validation`` (noisy, held out) is the ``eval_dataset`` and LiLAW's
meta set; ``test`` (clean) is evaluated once, after training. `synthetic_ecg` (a seeded ECG5000-like stand-in)
stays available for tests: ``--dataset synthetic_ecg``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field

from datasets import DatasetDict
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from hf_lilaw import (
    ELRConfig,
    ELRTrainer,
    LiLAWConfig,
    LiLAWTrainer,
    add_input_noise,
    add_label_noise,
    compare_runs,
    compute_classification_metrics,
)
from hf_lilaw.data import load_classification_dataset, vector_transform
from hf_lilaw.noise import DEPRECATED_LABEL_NOISE_TYPES, INPUT_NOISE_TYPES, PAIR_FLIP_MAPS, RULE_MAPS
from hf_lilaw.models import LSTMClassifierConfig, StackedLSTMForTimeSeriesClassification

CONFIGS = {"lilaw": LiLAWConfig, "elr": ELRConfig}
NOISE_RULES_HELP = (
    "The map of --noise_type pair_flip or rule_map: a key of hf_lilaw.noise.PAIR_FLIP_MAPS / RULE_MAPS, or a JSON "
    "map ('{\"0\": 1, \"1\": 0}' for pair_flip, '{\"0\": [1]}' for rule_map). Default: the data set's own map where "
    "hf_lilaw has one; else pair_flip moves y to (y + 1) mod K and rule_map needs this flag."
)


@dataclass
class ScriptArguments:
    method: str = field(
        default="lilaw", metadata={"help": "Method to train with: 'lilaw' or 'elr'.", "choices": list(CONFIGS)}
    )
    compare: bool = field(
        default=False, metadata={"help": "Also train plain transformers.Trainer (same weights, data, seed, schedule)."}
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "One run per seed."})
    dataset: str = field(
        default="ucr/ItalyPowerDemand",
        metadata={
            "help": "'ucr/<name>' for a UCR/UEA set read by hf_lilaw.data.load_ucr (offline for the sets aeon bundles), "
            "'ecg5000' (with --data_dir) or 'synthetic_ecg'."
        },
    )
    model: str | None = field(
        default=None,
        metadata={"help": "A saved StackedLSTMForTimeSeriesClassification (Hub id or path); default: a new LSTM."},
    )
    noise_type: str = field(
        default="uniform", metadata={"help": "Noise put into the training and validation splits (hf_lilaw.noise.NOISE_TYPES)."}
    )
    noise_rate: float = field(default=0.3, metadata={"help": "Fraction of training and validation samples to corrupt."})
    noise_rules: str | None = field(default=None, metadata={"help": NOISE_RULES_HELP})
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder with ECG5000_TRAIN.tsv and ECG5000_TEST.tsv (for --dataset ecg5000)."}
    )
    length: int | None = field(
        default=None, metadata={"help": "Resample every series of a ucr/ set to this many steps (long sets, e.g. ACSF1)."}
    )
    num_samples: int = field(default=2000, metadata={"help": "Size of the synthetic_ecg data set."})
    max_train_samples: int = field(
        default=0, metadata={"help": "Keep this many training samples (validation shrinks in proportion); 0 keeps all."}
    )
    max_test_samples: int = field(default=0, metadata={"help": "Keep this many test samples; 0 keeps all."})
    hidden_size: int = field(default=32, metadata={"help": "Units per LSTM layer."})
    num_layers: int = field(default=2, metadata={"help": "Stacked LSTM layers."})


def parse_args() -> tuple[ScriptArguments, LiLAWConfig | ELRConfig]:
    """The script's arguments and the chosen method's config (`LiLAWConfig` or `ELRConfig`)."""
    method = argparse.ArgumentParser(add_help=False)
    method.add_argument("--method", default="lilaw", choices=list(CONFIGS))
    parser = HfArgumentParser((ScriptArguments, CONFIGS[method.parse_known_args()[0].method]))
    # The inputs are made by Dataset.with_transform: Trainer must not drop the raw columns it reads.
    parser.set_defaults(
        output_dir="outputs/time_series_classification", num_train_epochs=60, per_device_train_batch_size=16,
        per_device_eval_batch_size=512, learning_rate=1e-2, logging_steps=10, remove_unused_columns=False,
        report_to="none", save_strategy="no",
    )  # fmt: skip
    return parser.parse_args_into_dataclasses()


def noise_rules(args: ScriptArguments) -> str | dict | None:
    """``rules=`` for `add_label_noise`: the map of pair_flip or rule_map noise (None for the other types)."""
    noise_type = DEPRECATED_LABEL_NOISE_TYPES.get(args.noise_type, args.noise_type)
    if noise_type not in ("pair_flip", "rule_map"):
        if args.noise_rules is not None:
            raise ValueError(f"--noise_rules is for --noise_type pair_flip or rule_map, not {args.noise_type!r}.")
        return None
    if args.noise_rules is not None:
        if args.noise_rules.lstrip().startswith("{"):
            return {int(source): target for source, target in json.loads(args.noise_rules).items()}
        return args.noise_rules
    maps = PAIR_FLIP_MAPS if noise_type == "pair_flip" else RULE_MAPS
    name = args.dataset if args.dataset in maps else None
    if name is None and noise_type == "rule_map":
        raise ValueError(
            f"--noise_type {args.noise_type} needs --noise_rules for --dataset {args.dataset}: a key of "
            f"hf_lilaw.noise.RULE_MAPS ({', '.join(sorted(RULE_MAPS))}) or a JSON map such as '{{\"0\": [1]}}'."
        )
    return name


def noise_name(args: ScriptArguments) -> str:
    """The noise type with the map it used, for the log, the model card and comparison.json."""
    rules = noise_rules(args)
    if DEPRECATED_LABEL_NOISE_TYPES.get(args.noise_type, args.noise_type) not in ("pair_flip", "rule_map"):
        return args.noise_type
    if rules is None:
        return f"{args.noise_type} (y → (y + 1) mod K)"
    return f"{args.noise_type} (map {rules if isinstance(rules, str) else json.dumps(rules)})"


def check_push_to_hub(training_args: TrainingArguments, seeds: list[int]) -> None:
    """Refuses --push_to_hub before any training: with several seeds, or unless the Hub accepts the login."""
    if not training_args.push_to_hub:
        return
    if len(seeds) > 1:
        raise ValueError("--push_to_hub uploads one model: pass a single seed (--seeds 0) with it.")
    from huggingface_hub import constants, get_token
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

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


def resume_checkpoints(resume: str | None, run_dirs: list[str]) -> dict[str, str | None]:
    """The checkpoint each run (by its output folder) resumes from under ``--resume_from_checkpoint``.

    ``true`` resumes every run from the last ``checkpoint-*`` of its folder (transformers' `get_last_checkpoint`);
    runs without one start from step 0. A checkpoint path resumes the run whose folder holds it from there (with a
    single run, any checkpoint folder), the other runs as with ``true``. Raises before any training when there is
    nothing to resume or the path is not one run's.
    """
    if resume is None or resume.lower() == "false":
        return dict.fromkeys(run_dirs)
    start = {run: get_last_checkpoint(run) if os.path.isdir(run) else None for run in run_dirs}
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
        start[owners[0]] = resume
    elif not any(start.values()):
        raise ValueError(
            f"--resume_from_checkpoint true: no checkpoint-* folder in {', '.join(run_dirs)}. Runs save checkpoints "
            "only with --save_strategy steps or epoch (this script's default is no); check --output_dir and --seeds, "
            "or drop --resume_from_checkpoint."
        )
    for run, checkpoint in start.items():
        print(f"{run}: resuming from {checkpoint}" if checkpoint else f"{run}: no checkpoint, training from step 0")
    return start


def load_noisy_splits(args: ScriptArguments, seed: int) -> DatasetDict:
    """``train`` and ``validation`` with noise (seeds ``seed``, ``seed + 1``) and a clean ``test``, shortened."""
    if args.dataset == "ecg5000":
        kwargs = {"data_dir": args.data_dir}
    elif args.dataset == "synthetic_ecg":
        kwargs = {"num_samples": args.num_samples}
    else:
        kwargs = {"length": args.length}
    splits = load_classification_dataset(args.dataset, seed=seed, **kwargs)
    train, validation, test = splits["train"], splits["meta"], splits["test"]
    if 0 < args.max_train_samples < len(train):
        n_validation = max(2, round(len(validation) * args.max_train_samples / len(train)))
        train = train.shuffle(seed=seed).select(range(args.max_train_samples))
        validation = validation.shuffle(seed=seed).select(range(min(n_validation, len(validation))))
    if 0 < args.max_test_samples < len(test):
        test = test.shuffle(seed=seed).select(range(args.max_test_samples))
    if args.noise_type in INPUT_NOISE_TYPES:
        add_noise = add_input_noise
    else:
        add_noise = functools.partial(add_label_noise, rules=noise_rules(args))
    train = add_noise(train, noise_type=args.noise_type, rate=args.noise_rate, seed=seed)
    validation = add_noise(validation, noise_type=args.noise_type, rate=args.noise_rate, seed=seed + 1)
    return DatasetDict(train=train, validation=validation, test=test)


def main() -> None:
    script_args, training_args = parse_args()
    seeds = script_args.seeds
    check_push_to_hub(training_args, seeds)
    noise = noise_name(script_args)
    base = training_args.output_dir
    outs = {seed: base if len(seeds) == 1 else f"{base}/seed_{seed}" for seed in seeds}  # one folder per seed
    trainers = ["trainer", script_args.method] if script_args.compare else [script_args.method]
    runs = [f"{outs[seed]}/{trainer}" for seed in seeds for trainer in trainers]
    resume = resume_checkpoints(training_args.resume_from_checkpoint, runs)  # run folder -> checkpoint or None
    descriptions = {"synthetic_ecg": "synthetic ECG5000-like heartbeats", "ecg5000": "ECG5000 (UCR)"}
    dataset = descriptions.get(script_args.dataset, script_args.dataset.replace("ucr/", "UCR "))
    transform = vector_transform(input_column="series", keep_columns=())
    per_seed = {}
    for seed in seeds:
        out = outs[seed]
        set_seed(seed)  # the LSTM's initial weights, shared by both runs
        splits = load_noisy_splits(script_args, seed)
        names = splits["train"].features["label"].names  # saved with the model, so it answers with class names
        labels = dict(num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
        if script_args.model is None:
            series = splits["train"][0]["series"]
            config = LSTMClassifierConfig(
                input_size=len(series[0]) if isinstance(series[0], list) else 1, hidden_size=script_args.hidden_size,
                num_layers=script_args.num_layers, **labels,
            )  # fmt: skip
            model = StackedLSTMForTimeSeriesClassification(config)
        else:
            model = StackedLSTMForTimeSeriesClassification.from_pretrained(script_args.model, **labels)
        train, validation, test = (splits[name].with_transform(transform) for name in ("train", "validation", "test"))
        metrics = {}

        if script_args.compare:
            args = dataclasses.replace(training_args, seed=seed, output_dir=f"{out}/trainer", push_to_hub=False)
            set_seed(seed)
            trainer = Trainer(
                model=copy.deepcopy(model),  # the same initial weights as the method's run
                args=args,
                train_dataset=train,
                eval_dataset=validation,
                compute_metrics=compute_classification_metrics,
            )
            trainer.train(resume_from_checkpoint=resume[args.output_dir])
            trainer.save_model()
            metrics["Trainer"] = trainer.evaluate(test, metric_key_prefix="test")

        args = dataclasses.replace(
            training_args, seed=seed, output_dir=f"{out}/{script_args.method}",
            hub_model_id=training_args.hub_model_id or os.path.basename(os.path.abspath(out)),
        )  # fmt: skip
        set_seed(seed)
        if script_args.method == "lilaw":
            trainer = LiLAWTrainer(
                model=model,
                args=args,
                train_dataset=train,
                meta_dataset=validation,  # LiLAW learns α, β, δ on the noisy validation split: it needs no clean data
                eval_dataset=validation,
                compute_metrics=compute_classification_metrics,
            )
        else:
            # ELR keeps one target per training row, found by its sample_id: the transform passes it through.
            with_ids = splits["train"].with_transform(vector_transform(input_column="series", keep_columns=("sample_id",)))
            trainer = ELRTrainer(
                model=model,
                args=args,
                train_dataset=with_ids,
                eval_dataset=validation,
                compute_metrics=compute_classification_metrics,
            )
        trainer.train(resume_from_checkpoint=resume[args.output_dir])
        trainer.save_model()
        metrics[type(trainer).__name__] = trainer.evaluate(test, metric_key_prefix="test")
        card = dict(
            dataset=dataset, noise_type=noise, noise_rate=script_args.noise_rate,
            comparison=metrics if script_args.compare else None,
        )  # fmt: skip
        if training_args.push_to_hub:
            trainer.push_to_hub(**card)  # the model, its card and the card's plot
        else:
            trainer.create_model_card(**card)
        per_seed[seed] = {"metrics": metrics}
        top1 = ", ".join(f"{k} {v['test_accuracy']:.4f}" for k, v in metrics.items())
        print(f"\nSeed {seed}, top-1 accuracy on {len(test)} test samples: {top1}")

    baseline = "Trainer" if script_args.compare else None
    comparison = compare_runs({seed: record["metrics"] for seed, record in per_seed.items()}, baseline=baseline)
    model_name = script_args.model or f"stacked LSTM ({script_args.num_layers}×{script_args.hidden_size})"
    print(f"\n{model_name} on {dataset}, {noise} noise at {script_args.noise_rate:.0%}, seeds {seeds}, test split:\n")
    print(comparison.to_markdown())
    record = {
        "model": model_name, "dataset": dataset, "method": script_args.method, "noise_type": script_args.noise_type,
        "noise_rules": noise_rules(script_args), "noise_rate": script_args.noise_rate, "seeds": seeds,
        "per_seed": per_seed, "summary": comparison.to_dict(),
    }  # fmt: skip
    with open(f"{training_args.output_dir}/comparison.json", "w") as f:
        json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
