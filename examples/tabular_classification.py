"""Income prediction (Adult) with an MLP on noisy labels, with accuracy per group: `Trainer` vs `LiLAWTrainer`.

Offline default: `synthetic_adult` (a seeded Adult-like set with a binary ``sex`` attribute) with 30 % of
the training labels flipped:

    python examples/tabular_classification.py --compare

The UCI Adult data from the Hub (scikit-learn/adult-census-income):

    python examples/tabular_classification.py --compare --dataset adult

Besides top-1/top-5/AUROC, the table shows accuracy per group and, for this binary task, the demographic
parity and equalized odds differences between the groups of ``--group_column``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from _common import Experiment, ScriptArguments, load_noisy_splits, parse_args, run_seeds

from hf_lilaw import make_fairness_compute_metrics, vector_transform
from hf_lilaw.models import MLPClassifierConfig, MLPForTabularClassification


@dataclass
class TabularArguments(ScriptArguments):
    dataset: str = field(
        default="synthetic_adult", metadata={"help": "'synthetic_adult' (offline) or 'adult' (UCI Adult from the Hub)."}
    )
    model: str | None = field(
        default=None, metadata={"help": "A saved MLPForTabularClassification (Hub id or path); default: a new MLP."}
    )
    noise_rate: float = field(default=0.3, metadata={"help": "Fraction of training (and meta) labels to corrupt."})
    group_column: str = field(default="sex", metadata={"help": "Sensitive attribute to report fairness metrics by."})
    num_samples: int = field(default=4000, metadata={"help": "Size of the synthetic_adult data set."})
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64], metadata={"help": "Widths of the hidden layers."})


def main() -> None:
    script_args, training_args = parse_args(
        TabularArguments,
        output_dir="outputs/tabular_classification",
        num_train_epochs=10,
        per_device_train_batch_size=64,
        per_device_eval_batch_size=512,
        learning_rate=1e-3,
        logging_steps=10,
    )
    loader_kwargs = {"num_samples": script_args.num_samples} if script_args.dataset == "synthetic_adult" else {}

    def build(seed: int) -> Experiment:
        splits = load_noisy_splits(script_args, seed=seed, **loader_kwargs)
        num_features = len(splits["train"][0]["features"])
        if script_args.model is None:
            config = MLPClassifierConfig(input_size=num_features, hidden_sizes=script_args.hidden_sizes, num_labels=2)
            model = MLPForTabularClassification(config)
        else:
            model = MLPForTabularClassification.from_pretrained(script_args.model)
        transform = vector_transform(input_column="features", keep_columns=())
        return Experiment(
            model=model,
            splits=splits,
            train_transform=transform,
            eval_transform=transform,
            compute_metrics=make_fairness_compute_metrics(splits["test"], group_column=script_args.group_column),
        )

    run_seeds(
        script_args,
        training_args,
        build=build,
        model_description=f"MLP {script_args.hidden_sizes}, trained from scratch" if script_args.model is None else script_args.model,
        dataset_description="synthetic Adult-like census data" if script_args.dataset == "synthetic_adult" else "scikit-learn/adult-census-income",
    )

if __name__ == "__main__":
    main()
