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

Your own copy of a set (``<Name>_TRAIN.ts`` and ``_TEST.ts``, or the UCR 2018 archive's ``.tsv`` pair):

    python examples/time_series_classification.py --compare --dataset ucr/Coffee --data_dir path/to/Coffee

Input noise instead of label noise (labels kept, series corrupted):

    python examples/time_series_classification.py --compare --noise_type ts_covariate --noise_rate 0.3

The paper's ECG5000 (UCR archive files, downloaded by you), close to the paper's setting (500 epochs,
batch 512, learning rate 0.001):

    python examples/time_series_classification.py --compare --dataset ecg5000 --data_dir path/to/ECG5000 \\
        --num_train_epochs 500 --per_device_train_batch_size 512 --learning_rate 1e-3

Splits: ``train`` (noisy) trains the model; ``validation`` (noisy, held out) is the ``eval_dataset`` and LiLAW's
meta set; ``test`` (clean) is evaluated once, after training. `synthetic_ecg` (a seeded ECG5000-like stand-in)
stays available for tests: ``--dataset synthetic_ecg`` (``--length`` sets its series length; ECG5000 refuses it).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field

from datasets import DatasetDict
from transformers import Trainer, set_seed

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
from hf_lilaw.data import dataset_key, load_classification_dataset, vector_transform
from hf_lilaw.noise import INPUT_NOISE_TYPES, realised_noise_rate
from hf_lilaw.models import LSTMClassifierConfig, StackedLSTMForTimeSeriesClassification
from hf_lilaw.scripts import (
    NOISE_RULES_HELP, check_push_to_hub, check_seeds, meta_carve, noise_name, noise_rules, noise_summary,
    parse_script_args, resume_checkpoints,
)

CONFIGS = {"lilaw": LiLAWConfig, "elr": ELRConfig}


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
        default=None,
        metadata={
            "help": "Folder with ECG5000_TRAIN.tsv and ECG5000_TEST.tsv (for --dataset ecg5000), or, for ucr/<Name>, "
            "with <Name>_TRAIN.ts and <Name>_TEST.ts (or the UCR 2018 archive's .tsv pair), or the folder above it."
        },
    )
    length: int | None = field(
        default=None,
        metadata={
            "help": "Resample every series of a ucr/ set to this many steps (long sets, e.g. ACSF1), or the length of "
            "the synthetic_ecg series (default 140); ecg5000's beats keep their 140 steps."
        },
    )
    num_samples: int = field(default=2000, metadata={"help": "Size of the synthetic_ecg data set."})
    max_train_samples: int = field(
        default=0, metadata={"help": "Keep this many training samples (validation shrinks in proportion); 0 keeps all."}
    )
    max_test_samples: int = field(default=0, metadata={"help": "Keep this many test samples; 0 keeps all."})
    hidden_size: int = field(default=32, metadata={"help": "Units per LSTM layer."})
    num_layers: int = field(default=2, metadata={"help": "Stacked LSTM layers."})


def parse_args() -> tuple[ScriptArguments, LiLAWConfig | ELRConfig]:
    """The script's arguments and the chosen method's config (`LiLAWConfig` or `ELRConfig`), from flags or a
    JSON or YAML file of them (``python script.py run.json``)."""
    # The inputs are made by Dataset.with_transform: Trainer must not drop the raw columns it reads.
    defaults = dict(
        output_dir="outputs/time_series_classification", num_train_epochs=60, per_device_train_batch_size=16,
        per_device_eval_batch_size=512, learning_rate=1e-2, logging_steps=10, remove_unused_columns=False,
        report_to="none", save_strategy="no",
    )  # fmt: skip
    return parse_script_args(ScriptArguments, CONFIGS, defaults=defaults)


def ucr_files(dataset: str, *, data_dir: str) -> tuple[str, str]:
    """``ucr/<Name>`` as spelled on disk and `load_ucr`'s ``extract_path`` for ``--data_dir``: the folder holding
    ``<Name>_TRAIN.ts`` and ``_TEST.ts`` (or ``.tsv``), or the one above it; refused where neither holds them (aeon
    would download into it)."""
    name = dataset.partition("/")[2]
    root = os.path.abspath(os.path.expanduser(data_dir))
    below = [os.path.join(root, e) for e in sorted(os.listdir(root))] if os.path.isdir(root) else []
    for folder in [root, *below]:
        found = os.path.basename(folder)
        if found.lower() == name.lower() and any(
            all(os.path.isfile(os.path.join(folder, f"{found}_{split}.{ext}")) for split in ("TRAIN", "TEST"))
            for ext in ("ts", "tsv")
        ):
            return f"ucr/{found}", os.path.dirname(folder)
    raise ValueError(
        f"--data_dir {data_dir}: no {name}_TRAIN.ts and {name}_TEST.ts (nor .tsv) in {root} or in {root}/{name}. "
        f"Point --data_dir at the folder holding them (or the one above it), or drop --data_dir to read aeon's copy."
    )


def load_noisy_splits(
    args: ScriptArguments, seed: int, *, meta_fraction: float = 0.15, meta_seed: int | None = None
) -> DatasetDict:
    """``train`` and ``validation`` with noise (seeds ``seed``, ``seed + 1``) and a clean ``test``, shortened."""
    name = args.dataset
    if dataset_key(args.dataset) == "ecg5000":
        if args.length is not None:
            raise ValueError(
                f"--length {args.length}: ECG5000 is read as the archive stores it, 140 steps per beat; drop --length, "
                "or resample the series yourself."
            )
        kwargs = {"data_dir": args.data_dir}
    elif dataset_key(args.dataset) == "synthetic_ecg":
        if args.data_dir is not None:
            raise ValueError(f"--data_dir {args.data_dir}: synthetic_ecg is generated, not read; drop --data_dir.")
        kwargs = {"num_samples": args.num_samples}
        if args.length is not None:  # else the loader's own default, ECG5000's 140 steps
            kwargs["length"] = args.length
    else:
        kwargs = {"length": args.length}
        if args.data_dir is not None:
            name, kwargs["extract_path"] = ucr_files(args.dataset, data_dir=args.data_dir)
    splits = load_classification_dataset(
        name, seed=seed, meta_fraction=meta_fraction, meta_seed=meta_seed, **kwargs
    )
    for split, rows in splits.items():
        lengths = {len(x) for x in rows["series"]}
        if len(lengths) > 1:  # else a crash in the first batch: default_data_collator stacks the series
            raise ValueError(
                f"{args.dataset}: the {split} series have unequal lengths ({min(lengths)} to {max(lengths)} steps), "
                "and a batch needs one; pass --length <steps> to resample every series to that length."
            )
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
        rules = noise_rules(args.noise_type, dataset=args.dataset, rules=args.noise_rules)
        add_noise = functools.partial(add_label_noise, rules=rules)
    train = add_noise(train, noise_type=args.noise_type, rate=args.noise_rate, seed=seed)
    validation = add_noise(validation, noise_type=args.noise_type, rate=args.noise_rate, seed=seed + 1)
    return DatasetDict(train=train, validation=validation, test=test)


def check_args(args: ScriptArguments) -> None:
    """Refuses, before any data is loaded, a flag this run would silently ignore."""
    defaults = ScriptArguments()
    if dataset_key(args.dataset) != "synthetic_ecg" and args.num_samples != defaults.num_samples:
        raise ValueError(
            f"--num_samples {args.num_samples} sizes synthetic_ecg only: --dataset {args.dataset} loads the whole set. "
            "Drop --num_samples; --max_train_samples keeps fewer training rows."
        )
    resized = [f"--{name} {getattr(args, name)}" for name in ("hidden_size", "num_layers")
               if getattr(args, name) != getattr(defaults, name)]  # fmt: skip
    if args.model is not None and resized:
        raise ValueError(
            f"{' '.join(resized)} sizes a new LSTM, but --model {args.model} keeps the layers it was saved with. Drop "
            f"{' and '.join(r.split()[0] for r in resized)}, or drop --model to train a new LSTM."
        )


def main() -> None:
    script_args, training_args = parse_args()
    seeds = script_args.seeds
    check_seeds(training_args, seeds=seeds)
    check_push_to_hub(training_args, seeds=seeds)
    check_args(script_args)
    noise = noise_name(script_args.noise_type, dataset=script_args.dataset, rules=script_args.noise_rules)
    base = training_args.output_dir
    outs = {seed: base if len(seeds) == 1 else f"{base}/seed_{seed}" for seed in seeds}  # one folder per seed
    trainers = ["trainer", script_args.method] if script_args.compare else [script_args.method]
    runs = [f"{outs[seed]}/{trainer}" for seed in seeds for trainer in trainers]
    resume = resume_checkpoints(
        training_args.resume_from_checkpoint, run_dirs=runs, save_only_model=training_args.save_only_model
    )  # run folder -> checkpoint or None
    descriptions = {"synthetic_ecg": "synthetic ECG5000-like heartbeats", "ecg5000": "ECG5000 (UCR)"}
    dataset = descriptions.get(dataset_key(script_args.dataset), script_args.dataset.replace("ucr/", "UCR "))
    transform = vector_transform(input_column="series", keep_columns=())
    per_seed = {}
    for seed in seeds:
        out = outs[seed]
        set_seed(seed)  # the LSTM's initial weights, shared by both runs
        splits = load_noisy_splits(script_args, seed, **meta_carve(training_args, method=script_args.method))
        realised = {split: realised_noise_rate(splits[split]) for split in ("train", "validation")}
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
        per_seed[seed] = {"metrics": metrics, "realised_noise_rate": realised}
        top1 = ", ".join(f"{k} {v['test_accuracy']:.4f}" for k, v in metrics.items())
        print(f"\nSeed {seed}, top-1 accuracy on {len(test)} test samples: {top1}")

    baseline = "Trainer" if script_args.compare else None
    comparison = compare_runs({seed: record["metrics"] for seed, record in per_seed.items()}, baseline=baseline)
    model_name = script_args.model or f"stacked LSTM ({script_args.num_layers}×{script_args.hidden_size})"
    realised, noise_phrase = noise_summary(noise, requested=script_args.noise_rate, per_seed=per_seed)
    print(f"\n{model_name} on {dataset}, {noise_phrase}, seeds {seeds}, test split:\n")
    print(comparison.to_markdown())
    record = {
        "model": model_name, "dataset": dataset, "method": script_args.method, "noise_type": script_args.noise_type,
        "noise_rules": noise_rules(script_args.noise_type, dataset=script_args.dataset, rules=script_args.noise_rules),
        "noise_rate": script_args.noise_rate, "realised_noise_rate": realised, "seeds": seeds,
        "per_seed": per_seed, "summary": comparison.to_dict(),
    }  # fmt: skip
    with open(f"{training_args.output_dir}/comparison.json", "w") as f:
        json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
