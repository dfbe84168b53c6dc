"""Time-series classification with the paper's stacked LSTM on noisy labels: `Trainer` vs `LiLAWTrainer`, over seeds.

Offline default: the UCR archive's ItalyPowerDemand (bundled with aeon: 2 classes, 24 steps, the archive's own
67 training and 1,029 test series; 15 % of the training split is the meta split) through
`hf_lilaw.data.load_ucr`, with 30 % of the training (and meta) labels flipped; a 2-layer LSTM of 32 units,
60 epochs at learning rate 0.01, seeds 0, 1, 2:

    python examples/time_series_classification.py --compare

Any other UCR/UEA set by name (aeon bundles ArrowHead, GunPoint, OSULeaf, ACSF1, BasicMotions, ...; others are
downloaded by aeon on first use); long series can be resampled with --length:

    python examples/time_series_classification.py --compare --dataset ucr/OSULeaf --length 128

Input noise instead of label noise (labels kept, series corrupted):

    python examples/time_series_classification.py --compare --noise_type ts_covariate --noise_rate 0.3

The paper's ECG5000 (UCR archive files, downloaded by you), close to the paper's setting (500 epochs,
batch 512, learning rate 0.001):

    python examples/time_series_classification.py --compare --dataset ecg5000 --data_dir path/to/ECG5000 \\
        --num_train_epochs 500 --per_device_train_batch_size 512 --learning_rate 1e-3

`synthetic_ecg` (a seeded ECG5000-like stand-in) stays available for tests: ``--dataset synthetic_ecg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from _common import Experiment, ScriptArguments, load_noisy_splits, parse_args, run_seeds

from hf_lilaw import vector_transform
from hf_lilaw.models import LSTMClassifierConfig, StackedLSTMForTimeSeriesClassification


@dataclass
class TimeSeriesArguments(ScriptArguments):
    dataset: str = field(
        default="ucr/ItalyPowerDemand",
        metadata={
            "help": "'ucr/<name>' for a UCR/UEA set read by hf_lilaw.load_ucr (offline for the sets aeon bundles), "
            "'ecg5000' (with --data_dir) or 'synthetic_ecg'."
        },
    )
    model: str | None = field(
        default=None,
        metadata={"help": "A saved StackedLSTMForTimeSeriesClassification (Hub id or path); default: a new LSTM."},
    )
    noise_rate: float = field(default=0.3, metadata={"help": "Fraction of training (and meta) samples to corrupt."})
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder with ECG5000_TRAIN.tsv and ECG5000_TEST.tsv (for --dataset ecg5000)."}
    )
    length: int | None = field(
        default=None, metadata={"help": "Resample every series of a ucr/ set to this many steps (long sets, e.g. ACSF1)."}
    )
    num_samples: int = field(default=2000, metadata={"help": "Size of the synthetic_ecg data set."})
    hidden_size: int = field(default=32, metadata={"help": "Units per LSTM layer."})
    num_layers: int = field(default=2, metadata={"help": "Stacked LSTM layers."})


def main() -> None:
    script_args, training_args = parse_args(
        TimeSeriesArguments,
        output_dir="outputs/time_series_classification",
        seeds=[0, 1, 2],
        num_train_epochs=60,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=512,
        learning_rate=1e-2,
        logging_steps=10,
    )
    if script_args.dataset == "ecg5000":
        loader_kwargs = {"data_dir": script_args.data_dir}
    elif script_args.dataset == "synthetic_ecg":
        loader_kwargs = {"num_samples": script_args.num_samples}
    else:
        loader_kwargs = {"length": script_args.length}

    def build(seed: int) -> Experiment:
        splits = load_noisy_splits(script_args, seed=seed, **loader_kwargs)
        num_labels = splits["train"].features["label"].num_classes
        if script_args.model is None:
            series = splits["train"][0]["series"]
            channels = len(series[0]) if isinstance(series[0], list) else 1
            config = LSTMClassifierConfig(
                input_size=channels, hidden_size=script_args.hidden_size, num_layers=script_args.num_layers,
                num_labels=num_labels,
            )
            model = StackedLSTMForTimeSeriesClassification(config)
        else:
            model = StackedLSTMForTimeSeriesClassification.from_pretrained(script_args.model, num_labels=num_labels)
        transform = vector_transform(input_column="series", keep_columns=())
        return Experiment(model=model, splits=splits, train_transform=transform, eval_transform=transform)

    descriptions = {"synthetic_ecg": "synthetic ECG5000-like heartbeats", "ecg5000": "ECG5000 (UCR)"}
    run_seeds(
        script_args,
        training_args,
        build=build,
        model_description=f"stacked LSTM ({script_args.num_layers}×{script_args.hidden_size}), trained from scratch"
        if script_args.model is None
        else script_args.model,
        dataset_description=descriptions.get(script_args.dataset, script_args.dataset.replace("ucr/", "UCR ")),
    )


if __name__ == "__main__":
    main()
