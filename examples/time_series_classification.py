"""Heartbeat classification with a stacked LSTM on noisy data: `Trainer` vs `LiLAWTrainer`.

Offline default: `synthetic_ecg` (a seeded stand-in shaped like ECG5000: 5 imbalanced classes, 140 steps)
with 30 % of the training labels flipped uniformly:

    python examples/time_series_classification.py --compare

Input noise instead of label noise (labels kept, series corrupted):

    python examples/time_series_classification.py --compare --noise_type ts_covariate --noise_rate 0.3

The real ECG5000 (UCR archive files, downloaded by you), close to the paper's setting (500 epochs,
batch 512, learning rate 0.001):

    python examples/time_series_classification.py --compare --dataset ecg5000 --data_dir path/to/ECG5000 \
        --num_train_epochs 500 --per_device_train_batch_size 512 --learning_rate 1e-3
"""

from __future__ import annotations

from dataclasses import dataclass, field

from _common import ScriptArguments, compare, load_noisy_splits, parse_args
from transformers import set_seed

from hf_lilaw import vector_transform
from hf_lilaw.models import LSTMClassifierConfig, StackedLSTMForTimeSeriesClassification


@dataclass
class TimeSeriesArguments(ScriptArguments):
    dataset: str = field(
        default="synthetic_ecg", metadata={"help": "'synthetic_ecg' (offline) or 'ecg5000' (with --data_dir)."}
    )
    model: str | None = field(
        default=None,
        metadata={"help": "A saved StackedLSTMForTimeSeriesClassification (Hub id or path); default: a new LSTM."},
    )
    noise_rate: float = field(default=0.3, metadata={"help": "Fraction of training (and meta) samples to corrupt."})
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder with ECG5000_TRAIN.tsv and ECG5000_TEST.tsv (for --dataset ecg5000)."}
    )
    num_samples: int = field(default=2000, metadata={"help": "Size of the synthetic_ecg data set."})
    hidden_size: int = field(default=32, metadata={"help": "Units per LSTM layer."})
    num_layers: int = field(default=2, metadata={"help": "Stacked LSTM layers."})


def main() -> None:
    script_args, training_args = parse_args(
        TimeSeriesArguments,
        output_dir="outputs/time_series_classification",
        num_train_epochs=15,
        per_device_train_batch_size=64,
        per_device_eval_batch_size=256,
        learning_rate=5e-3,
        logging_steps=10,
    )
    if script_args.dataset == "ecg5000":
        loader_kwargs = {"data_dir": script_args.data_dir}
    else:
        loader_kwargs = {"num_samples": script_args.num_samples}
    splits = load_noisy_splits(script_args, seed=training_args.seed, **loader_kwargs)
    num_labels = splits["train"].features["label"].num_classes
    set_seed(training_args.seed)  # the initial weights, shared by both runs
    if script_args.model is None:
        config = LSTMClassifierConfig(
            hidden_size=script_args.hidden_size, num_layers=script_args.num_layers, num_labels=num_labels
        )
        model = StackedLSTMForTimeSeriesClassification(config)
    else:
        model = StackedLSTMForTimeSeriesClassification.from_pretrained(script_args.model, num_labels=num_labels)
    transform = vector_transform(input_column="series", keep_columns=())
    compare(
        script_args,
        training_args,
        model=model,
        splits=splits,
        train_transform=transform,
        eval_transform=transform,
        dataset_description="synthetic ECG5000-like heartbeats" if script_args.dataset == "synthetic_ecg" else "ECG5000 (UCR)",
    )


if __name__ == "__main__":
    main()
