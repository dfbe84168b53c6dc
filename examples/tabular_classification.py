"""Income prediction (Adult) with an MLP on noisy labels, `LiLAWTrainer` (or `ELRTrainer`), with accuracy per group.

Offline default: `synthetic_adult` (a seeded Adult-like set with a binary ``sex`` attribute) with 30 % of the
training and validation labels flipped, one seed; ``--compare`` also trains plain `transformers.Trainer` from the
same weights, data, seed and schedule:

    python examples/tabular_classification.py --compare
    python examples/tabular_classification.py --compare --method elr

The UCI Adult data from the Hub (scikit-learn/adult-census-income):

    python examples/tabular_classification.py --compare --dataset adult

Splits: ``train`` (noisy) trains the model; ``validation`` (noisy, held out) is the ``eval_dataset`` and LiLAW's
meta set; ``test`` (clean) is evaluated once, after training. Besides top-1/AUROC, the test metrics show accuracy
per group and, for this binary task, the demographic parity and equalized odds differences between the groups of
``--group_column``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field

from datasets import DatasetDict
from transformers import Trainer, set_seed

from hf_lilaw import ELRConfig, ELRTrainer, LiLAWConfig, LiLAWTrainer, add_label_noise, compare_runs
from hf_lilaw.data import dataset_key, load_classification_dataset, vector_transform
from hf_lilaw.metrics import make_fairness_compute_metrics
from hf_lilaw.models import MLPClassifierConfig, MLPForTabularClassification
from hf_lilaw.noise import realised_noise_rate
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
    seeds: list[int] | None = field(default=None, metadata={"help": "One run per seed; default: --seed alone."})
    dataset: str = field(
        default="synthetic_adult", metadata={"help": "'synthetic_adult' (offline) or 'adult' (UCI Adult from the Hub)."}
    )
    model: str | None = field(
        default=None, metadata={"help": "A saved MLPForTabularClassification (Hub id or path); default: a new MLP."}
    )
    noise_type: str = field(default="uniform", metadata={"help": "Label noise (hf_lilaw.noise.LABEL_NOISE_TYPES)."})
    noise_rate: float = field(default=0.3, metadata={"help": "Fraction of training and validation labels to corrupt."})
    noise_rules: str | None = field(default=None, metadata={"help": NOISE_RULES_HELP})
    group_column: str = field(default="sex", metadata={"help": "Sensitive attribute to report fairness metrics by."})
    num_samples: int = field(default=4000, metadata={"help": "Size of the synthetic_adult data set."})
    max_train_samples: int = field(
        default=0, metadata={"help": "Keep this many training samples (validation shrinks in proportion); 0 keeps all."}
    )
    max_test_samples: int = field(default=0, metadata={"help": "Keep this many test samples; 0 keeps all."})
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64], metadata={"help": "Widths of the hidden layers."})


def parse_args() -> tuple[ScriptArguments, LiLAWConfig | ELRConfig]:
    """The script's arguments and the chosen method's config (`LiLAWConfig` or `ELRConfig`), from flags or a
    JSON or YAML file of them (``python script.py run.json``)."""
    # The inputs are made by Dataset.with_transform: Trainer must not drop the raw columns it reads.
    defaults = dict(
        output_dir="outputs/tabular_classification", num_train_epochs=10, per_device_train_batch_size=64,
        per_device_eval_batch_size=512, learning_rate=1e-3, logging_steps=10, remove_unused_columns=False,
        report_to="none", save_strategy="no",
    )  # fmt: skip
    return parse_script_args(ScriptArguments, CONFIGS, defaults=defaults)


def check_args(args: ScriptArguments) -> None:
    """Refuses, before any data is loaded, a flag this run would silently ignore."""
    defaults = ScriptArguments()
    if dataset_key(args.dataset) not in ("synthetic_adult", "adult"):
        # other registered sets have no encoded 'features' column (nor the groups): a KeyError after loading
        raise ValueError(
            f"--dataset {args.dataset}: this script trains an MLP on 'synthetic_adult' or 'adult' (encoded census rows "
            "with their groups). For image or time-series sets, use the image or time-series example."
        )
    if dataset_key(args.dataset) == "adult" and args.num_samples != defaults.num_samples:
        raise ValueError(
            f"--num_samples {args.num_samples} sizes synthetic_adult only: --dataset adult loads all of UCI Adult. "
            "Drop --num_samples; --max_train_samples and --max_test_samples keep fewer rows."
        )
    if args.model is not None and args.hidden_sizes != defaults.hidden_sizes:
        raise ValueError(
            f"--hidden_sizes {' '.join(map(str, args.hidden_sizes))} sizes a new MLP, but --model {args.model} keeps "
            "the layers it was saved with. Drop --hidden_sizes, or drop --model to train a new MLP."
        )


def load_noisy_splits(
    args: ScriptArguments, seed: int, *, meta_fraction: float = 0.15, meta_seed: int | None = None
) -> DatasetDict:
    """``train`` and ``validation`` with label noise (seeds ``seed``, ``seed + 1``) and a clean ``test``."""
    kwargs = {"num_samples": args.num_samples} if dataset_key(args.dataset) == "synthetic_adult" else {}
    splits = load_classification_dataset(
        args.dataset, seed=seed, meta_fraction=meta_fraction, meta_seed=meta_seed, **kwargs
    )
    train, validation, test = splits["train"], splits["meta"], splits["test"]
    if 0 < args.max_train_samples < len(train):
        n_validation = max(2, round(len(validation) * args.max_train_samples / len(train)))
        train = train.shuffle(seed=seed).select(range(args.max_train_samples))
        validation = validation.shuffle(seed=seed).select(range(min(n_validation, len(validation))))
    if 0 < args.max_test_samples < len(test):
        test = test.shuffle(seed=seed).select(range(args.max_test_samples))
    rules = noise_rules(args.noise_type, dataset=args.dataset, rules=args.noise_rules)
    train = add_label_noise(train, noise_type=args.noise_type, rate=args.noise_rate, seed=seed, rules=rules)
    validation = add_label_noise(
        validation, noise_type=args.noise_type, rate=args.noise_rate, seed=seed + 1, rules=rules
    )
    return DatasetDict(train=train, validation=validation, test=test)


def main() -> None:
    script_args, training_args = parse_args()
    seeds = script_args.seeds or [training_args.seed]
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
    dataset = "scikit-learn/adult-census-income" if dataset_key(script_args.dataset) == "adult" else "synthetic Adult-like census data"
    transform = vector_transform(input_column="features", keep_columns=())
    per_seed = {}
    for seed in seeds:
        out = outs[seed]
        set_seed(seed)  # the MLP's initial weights, shared by both runs
        splits = load_noisy_splits(script_args, seed, **meta_carve(training_args, method=script_args.method))
        realised = {split: realised_noise_rate(splits[split]) for split in ("train", "validation")}
        names = splits["train"].features["label"].names  # saved with the model, so it answers with class names
        labels = dict(num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
        if script_args.model is None:
            num_features = len(splits["train"][0]["features"])
            config = MLPClassifierConfig(input_size=num_features, hidden_sizes=script_args.hidden_sizes, **labels)
            model = MLPForTabularClassification(config)
        else:
            model = MLPForTabularClassification.from_pretrained(script_args.model, **labels)
        train, validation, test = (splits[name].with_transform(transform) for name in ("train", "validation", "test"))
        # compute_metrics reads the groups of the set it scores: one for evaluation, one for the final test.
        validation_metrics = make_fairness_compute_metrics(splits["validation"], group_column=script_args.group_column)
        test_metrics = make_fairness_compute_metrics(splits["test"], group_column=script_args.group_column)
        metrics = {}

        if script_args.compare:
            args = dataclasses.replace(training_args, seed=seed, output_dir=f"{out}/trainer", push_to_hub=False)
            set_seed(seed)
            trainer = Trainer(
                model=copy.deepcopy(model),  # the same initial weights as the method's run
                args=args,
                train_dataset=train,
                eval_dataset=validation,
                compute_metrics=validation_metrics,
            )
            trainer.train(resume_from_checkpoint=resume[args.output_dir])
            trainer.save_model()
            trainer.compute_metrics = test_metrics
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
                compute_metrics=validation_metrics,
            )
        else:
            # ELR keeps one target per training row, found by its sample_id: the transform passes it through.
            with_ids = splits["train"].with_transform(vector_transform(input_column="features", keep_columns=("sample_id",)))
            trainer = ELRTrainer(
                model=model, args=args, train_dataset=with_ids, eval_dataset=validation, compute_metrics=validation_metrics
            )
        trainer.train(resume_from_checkpoint=resume[args.output_dir])
        trainer.save_model()
        trainer.compute_metrics = test_metrics
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
    model_name = f"MLP {script_args.hidden_sizes}" if script_args.model is None else script_args.model
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
