"""Image classification on noisy labels: transformers or timm models, `Trainer` vs `LiLAWTrainer`.

Offline default (no download): a small ViT initialised at random on scikit-learn's digits, upscaled to
32×32 RGB, with 40 % of the training labels replaced uniformly at random:

    python examples/image_classification.py --compare

The paper's CIFAR-100 / ViT-B/16 setting (GPU, downloads model and data from the Hub):

    python examples/image_classification.py --compare --dataset cifar100 --model google/vit-base-patch16-224-in21k \
        --noise_type uniform --noise_rate 0.5 --num_train_epochs 10 --per_device_train_batch_size 128 \
        --learning_rate 2e-4 --bf16 --dataloader_num_workers 8 --output_dir outputs/cifar100-vit-b16

timm models go through transformers' `TimmWrapperForImageClassification`:

    python examples/image_classification.py --compare --backend timm                # test_resnet, offline
    python examples/image_classification.py --compare --backend timm --model timm/resnet18.a1_in1k
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from _common import ScriptArguments, compare, load_noisy_splits, parse_args
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
    set_seed,
)

from hf_lilaw import image_transforms


@dataclass
class ImageArguments(ScriptArguments):
    backend: str = field(
        default="transformers",
        metadata={"help": "'transformers' (AutoModelForImageClassification) or 'timm' (TimmWrapperForImageClassification)."},
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "Hub id or path to fine-tune (e.g. google/vit-base-patch16-224-in21k, timm/resnet18.a1_in1k), or with "
            "--backend timm a timm architecture to initialise at random (default test_resnet). Default for "
            "--backend transformers: a small ViT initialised at random, offline."
        },
    )
    image_size: int = field(default=32, metadata={"help": "Side of the digits images and of the random-init models."})
    train_last_layers: int | None = field(
        default=None,
        metadata={
            "help": "Train only the last N blocks of the backbone and what follows them (final norm, head); 0 is linear "
            "probing. Default: full fine-tuning."
        },
    )
    augment: bool = field(
        default=False, metadata={"help": "Train on random resized crops and flips (the transformers example's augmentation)."}
    )


def build_model(args: ImageArguments, num_labels: int):
    """The model and its preprocessor (an image processor, or the model itself for timm's data config)."""
    if args.backend == "timm":
        if args.model is None or "/" not in args.model:  # a timm architecture, initialised at random
            size = args.image_size
            model_args = {"pretrained_cfg_overlay": {"input_size": (3, size, size)}}
            if "vit" in (args.model or ""):  # ViTs fix their input size at build time
                model_args["img_size"] = size
            config = TimmWrapperConfig(architecture=args.model or "test_resnet", num_labels=num_labels, model_args=model_args)
            model = TimmWrapperForImageClassification(config)
        else:
            model = TimmWrapperForImageClassification.from_pretrained(args.model, num_labels=num_labels, ignore_mismatched_sizes=True)
        return model, model
    if args.model is None:
        config = ViTConfig(
            image_size=args.image_size, patch_size=8, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
            intermediate_size=128, num_labels=num_labels,
        )
        processor = ViTImageProcessor(size={"height": args.image_size, "width": args.image_size})
        return ViTForImageClassification(config), processor
    model = AutoModelForImageClassification.from_pretrained(args.model, num_labels=num_labels, ignore_mismatched_sizes=True)
    return model, AutoImageProcessor.from_pretrained(args.model)


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
        num_train_epochs=30,
        per_device_train_batch_size=64,
        per_device_eval_batch_size=256,
        learning_rate=2e-3,
        logging_steps=10,
    )
    loader_kwargs = {"size": script_args.image_size, "rgb": True} if script_args.dataset == "digits" else {}
    splits = load_noisy_splits(script_args, seed=training_args.seed, **loader_kwargs)
    num_labels = splits["train"].features["label"].num_classes
    set_seed(training_args.seed)  # the initial weights, shared by both runs
    model, preprocessor = build_model(script_args, num_labels)
    if script_args.train_last_layers is not None:
        freeze_all_but_last(model, script_args.train_last_layers)
    compare(
        script_args,
        training_args,
        model=model,
        splits=splits,
        train_transform=image_transforms(preprocessor, train=script_args.augment, keep_columns=()),
        eval_transform=image_transforms(preprocessor, train=False, keep_columns=()),
        processing_class=None if preprocessor is model else preprocessor,  # timm models carry their data config
        dataset_description=(
            f"scikit-learn digits upscaled to {script_args.image_size}×{script_args.image_size} RGB"
            if script_args.dataset == "digits"
            else script_args.dataset
        ),
    )


if __name__ == "__main__":
    main()
