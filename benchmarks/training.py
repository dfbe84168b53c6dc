"""One run of a method on one noisy-label cell: the config, the cell's data and the trainers.

Shared by the grids that train the methods of `benchmarks/accuracy.py`'s list (``accuracy.py``,
``finetune_noise.py``, ``mlc_benchmark.py``, ``mlc_diagnostic.py``): `resolve_config` fills a config with the
defaults, `load_base` and `prepare_cell` build the data of a (seed, noise type, rate) once for all methods,
`run_method` trains one method on it and returns its record fields.

Methods:
  ce                 plain Trainer, cross-entropy
  focal, gce, sce    plain Trainer with a robust loss from hf_lilaw.losses
  lilaw              LiLAWTrainer, the noisy meta split (15 %) as meta set, weights not detached (default)
  lilaw_detached     the same with lilaw_detach_weights=True
  lilaw_sce          LiLAW with the symmetric cross-entropy as its per-sample base loss (lilaw_base_loss="sce")
  lilaw_clean2       LiLAWTrainer with the 2 % clean set as meta set
  lilaw_noisy2       LiLAWTrainer with the same 2 % rows but their noisy labels as meta set
  clean_only         plain Trainer on the training rows whose label is not noisy (oracle, paper Table 9)
  prune_cleanlab     cleanlab find_label_issues on K-fold out-of-fold probabilities, drop, retrain with CE
  prune_small_loss   the same, dropping the largest out-of-fold losses (as many as the estimated noise rate)
  prune_onerun       one LiLAW run flags likely label errors by W_α, drop them, retrain with CE (one detection
                     training instead of K)
  ebomlc, mlc_d, mlc meta label correction with the 2 % clean set
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks import baselines
from benchmarks.common import (
    EpochEvaluator,
    StepTimer,
    TensorRows,
    build_model,
    eval_loader,
    former_defaults_mlc_config,
    image_collator,
    predict_logits,
    tensorise_images,
)

ALL_METHODS = (
    "ce", "focal", "gce", "sce", "lilaw", "lilaw_detached", "lilaw_sce", "lilaw_clean2", "lilaw_noisy2",
    "clean_only", "prune_cleanlab", "prune_small_loss", "prune_onerun", "ebomlc", "mlc_d", "mlc",
)  # fmt: skip
LILAW_METHODS = ("lilaw", "lilaw_detached", "lilaw_sce", "lilaw_clean2", "lilaw_noisy2")
MLC_METHODS = ("ebomlc", "mlc_d", "mlc")
LOSS_METHODS = {"ce": "cross_entropy", "focal": "focal", "gce": "gce", "sce": "sce"}
METHOD_LABELS = {
    "ce": "CE (Trainer)",
    "focal": "focal (γ=2)",
    "gce": "GCE (q=0.7)",
    "sce": "SCE (α=0.1, β=1)",
    "lilaw": "LiLAW",
    "lilaw_detached": "LiLAW, detached W",
    "lilaw_sce": "LiLAW on SCE",
    "lilaw_clean2": "LiLAW, 2 % clean meta",
    "lilaw_noisy2": "LiLAW, 2 % noisy meta",
    "clean_only": "clean subset only (oracle)",
    "prune_cleanlab": "cleanlab prune + retrain",
    "prune_small_loss": "small-loss prune + retrain",
    "prune_onerun": "one-run W_α prune + retrain",
    "ebomlc": "EBOMLC (2 % clean)",
    "mlc_d": "MLC-D (2 % clean)",
    "mlc": "MLC (2 % clean)",
}

DEFAULTS: dict[str, Any] = {
    "meta_fraction": 0.15,
    "clean_fraction": 0.02,
    "training": {
        "epochs": 10,
        "batch_size": 32,
        "eval_batch_size": 256,
        "learning_rate": 1e-3,
        "weight_decay": 0.0,
        "lr_scheduler_type": "linear",
        "warmup_ratio": 0.0,
        "optim": "adamw_torch",
        "max_grad_norm": 1.0,
        "bf16": False,
        "logging_steps": 10,
    },
    "lilaw": {"warmup_epochs": 1.0},
    "method_options": {
        "focal": {"gamma": 2.0},
        "gce": {"q": 0.7},
        "sce": {"alpha": 0.1, "beta": 1.0},
        "prune": {"folds": 3},
        "mlc": {"clean_batch_size": 16},
    },
    "noise_options": {},
    "param_plot": {"noise_type": "uniform", "rates": [0.0, 0.5], "method": "lilaw"},
}


# ------------------------------------------------------------------------------------------------ config


def resolve_config(raw: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            merged = dict(cfg[key])
            for k, v in value.items():
                merged[k] = {**merged[k], **v} if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
            cfg[key] = merged
        else:
            cfg[key] = value
    for key in ("name", "dataset", "model", "noise_types", "rates", "seeds", "methods"):
        if key not in cfg:
            raise ValueError(f"The config needs a {key!r} entry (see benchmarks/configs/digits_cpu.json).")
    unknown = [m for m in cfg["methods"] if m not in ALL_METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; pick from {list(ALL_METHODS)}.")
    if "ce" not in cfg["methods"]:
        raise ValueError("The methods must include 'ce': every method is compared with it.")
    return cfg


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``key.sub=value`` assignments on the raw config; the value is parsed as JSON when it can be."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set needs KEY=VALUE, got {item!r}.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return raw


# ------------------------------------------------------------------------------------------------ data


@dataclass
class CellData:
    """The data of one (noise type, rate, seed): identical for every method."""

    train: Any
    meta: Any  # the 15 % noisy meta/validation split
    test: Any
    clean: Any  # 2 % class-balanced clean set (rows of the meta split, true labels)
    noisy_small: Any  # the same rows with their noisy labels
    is_noisy: np.ndarray  # per training row
    realised_rate: float
    num_labels: int
    in_channels: int
    image_size: int
    train_eval: Any = None  # the training rows with the evaluation transform (out-of-fold predictions)
    input_key: str = "pixel_values"


def load_base(cfg: dict[str, Any], seed: int, model_for_transforms: Any) -> dict[str, Any]:
    """The seed's train/meta/test splits (the split depends on the seed only), tensorised when configured."""
    from hf_lilaw.data import load_classification_dataset

    spec = cfg["dataset"]
    splits = load_classification_dataset(
        spec["name"], seed=seed, meta_fraction=cfg["meta_fraction"], **spec.get("kwargs", {})
    )
    train, meta, test = splits["train"], splits["meta"], splits["test"]
    if spec.get("max_train_samples"):
        train = train.select(range(min(len(train), spec["max_train_samples"])))
    if spec.get("max_eval_samples"):
        meta = meta.select(range(min(len(meta), spec["max_eval_samples"])))
        test = test.select(range(min(len(test), spec["max_eval_samples"])))
    base = {"train": train, "meta": meta, "test": test, "num_labels": train.features["label"].num_classes}
    preprocessing = spec.get("preprocessing", "tensor")
    if preprocessing == "tensor":
        channels = spec.get("channels", 1)
        # Per-channel statistics (e.g. ImageNet's for a pretrained model) broadcast over C×H×W.
        mean = np.asarray(spec.get("mean", 0.5), dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(spec.get("std", 0.5), dtype=np.float32).reshape(-1, 1, 1)
        for name in ("train", "meta", "test"):
            base[name] = tensorise_images(base[name], channels=channels, mean=mean, std=std)
        shape = base["train"].features["pixel_values"].shape
        base.update(in_channels=int(shape[0]), image_size=int(shape[-1]))
        base["test"] = TensorRows.from_dataset(base["test"], ["pixel_values", "label"])
    elif preprocessing == "model":
        base.update(in_channels=3, image_size=spec.get("image_size", 224), transforms_model=model_for_transforms)
    else:
        raise ValueError(f"dataset.preprocessing must be 'tensor' or 'model', got {preprocessing!r}.")
    base["preprocessing"] = preprocessing
    return base


def prepare_cell(cfg: dict[str, Any], base: dict[str, Any], noise_type: str, rate: float, seed: int) -> CellData:
    import datasets

    from hf_lilaw import add_label_noise

    train, meta, test = base["train"], base["meta"], base["test"]
    num_labels = base["num_labels"]
    # Noise the training and meta rows together: one draw (e.g. one asymmetric transition matrix) for both.
    full = datasets.concatenate_datasets([train, meta])
    options = cfg["noise_options"].get(noise_type, {})
    full = add_label_noise(full, noise_type="uniform" if rate == 0 else noise_type, rate=rate, seed=seed, **options)
    n_train = len(train)
    train, meta = full.select(range(n_train)), full.select(range(n_train, len(full)))
    flags = np.asarray(full.with_format("numpy", columns=["is_noisy"])[:]["is_noisy"], dtype=bool)
    is_noisy, realised = flags[:n_train], float(flags.mean())

    # The clean set: class-balanced, clean_fraction of train ∪ meta, drawn from the meta rows.
    per_class = max(1, int(round(cfg["clean_fraction"] * len(full) / num_labels)))
    true = np.asarray(meta.with_format("numpy", columns=["clean_label"])[:]["clean_label"])
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for k in range(num_labels):
        picked.extend(rng.permutation(np.flatnonzero(true == k))[:per_class].tolist())
    picked = sorted(picked)

    if base["preprocessing"] == "tensor":
        train, meta = TensorRows.from_dataset(train), TensorRows.from_dataset(meta)
        noisy_small = meta.select(picked)
        clean = noisy_small.with_column("label", noisy_small.columns["clean_label"])
        train_eval = train
    else:
        from hf_lilaw.data import image_transforms

        model = base["transforms_model"]
        noisy_small = meta.select(picked)
        clean = noisy_small.remove_columns(["label"]).rename_column("clean_label", "label")
        train_eval = train.select(range(len(train)))  # a separate object: its own (evaluation) transform
        train.set_transform(image_transforms(model, train=True))
        clean.set_transform(image_transforms(model, train=True))  # MLC trains on it
        for d in (meta, test, noisy_small, train_eval):
            d.set_transform(image_transforms(model, train=False))
    return CellData(
        train=train, meta=meta, test=test, clean=clean, noisy_small=noisy_small, is_noisy=is_noisy,
        realised_rate=realised, num_labels=num_labels, in_channels=base["in_channels"],
        image_size=base["image_size"], train_eval=train_eval,
    )  # fmt: skip


def labels_of(dataset: Any) -> np.ndarray:
    if isinstance(dataset, TensorRows):
        return dataset.columns["label"].numpy()
    return np.asarray(dataset.with_format("numpy", columns=["label"])[:]["label"])


# ------------------------------------------------------------------------------------------------ training


def common_args(cfg: dict[str, Any], seed: int, output_dir: str, device: str) -> dict[str, Any]:
    t = cfg["training"]
    return dict(
        output_dir=output_dir,
        per_device_train_batch_size=t["batch_size"],
        per_device_eval_batch_size=t["eval_batch_size"],
        num_train_epochs=t["epochs"],
        learning_rate=t["learning_rate"],
        weight_decay=t["weight_decay"],
        lr_scheduler_type=t["lr_scheduler_type"],
        warmup_steps=t.get("warmup_ratio", 0.0),  # transformers 5: a float < 1 is a ratio of the total steps
        optim=t["optim"],
        max_grad_norm=t["max_grad_norm"],
        bf16=t["bf16"],
        logging_steps=t["logging_steps"],
        seed=seed,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=t.get("dataloader_num_workers", 0),
        use_cpu=device == "cpu",
        remove_unused_columns=False,  # image_collator picks the model inputs; transforms need the raw columns
    )


def with_lr_schedule(trainer_cls: type, cfg: dict[str, Any]) -> type:
    """The trainer class, with a multi-step LR schedule (paper's MedMNIST setting) when the config asks for one."""
    schedule = cfg["training"].get("lr_schedule")
    if not schedule:
        return trainer_cls
    if schedule.get("type") != "multistep":
        raise ValueError(f"training.lr_schedule.type must be 'multistep', got {schedule.get('type')!r}.")

    class MultiStepScheduled(trainer_cls):  # type: ignore[misc, valid-type]
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None):
            if self.lr_scheduler is None:
                steps_per_epoch = max(1, num_training_steps // max(1, int(self.args.num_train_epochs)))
                milestones = [int(e * steps_per_epoch) for e in schedule["milestones_epochs"]]
                # Each benchmark trainer calls train() once, so the scheduler never needs re-creating.
                self.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
                    optimizer or self.optimizer, milestones=milestones, gamma=schedule.get("gamma", 0.1)
                )
            return self.lr_scheduler

    MultiStepScheduled.__name__ = f"MultiStep{trainer_cls.__name__}"
    return MultiStepScheduled


def new_model(cfg: dict[str, Any], cell: CellData, seed: int) -> torch.nn.Module:
    from transformers import set_seed

    set_seed(seed)  # the same initial weights for every method of a seed
    return build_model(cfg["model"], num_labels=cell.num_labels, in_channels=cell.in_channels, image_size=cell.image_size)


def train_one(
    method: str, cfg: dict[str, Any], cell: CellData, seed: int, *, train_dataset: Any, device: str, evaluate: bool = True
) -> dict[str, Any]:
    """Train one model with ``method``'s trainer on ``train_dataset``; per-epoch accuracies and step times."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from hf_lilaw import EBOMLCTrainer, LiLAWConfig, LiLAWTrainer, MLCDTrainer, MLCTrainer

    opts = cfg["method_options"]
    bs = cfg["training"]["batch_size"]
    model = new_model(cfg, cell, seed)
    timer = StepTimer(sync_cuda=device.startswith("cuda"))
    callbacks: list[Any] = [timer]
    evaluator = None
    if evaluate:
        eval_bs = cfg["training"]["eval_batch_size"]
        loaders = {name: _eval_batches(d, cell, eval_bs) for name, d in (("test", cell.test), ("meta", cell.meta))}
        evaluator = EpochEvaluator(loaders, torch.device(device), bf16=cfg["training"]["bf16"])
        callbacks.append(evaluator)
    with tempfile.TemporaryDirectory() as tmp:
        base = common_args(cfg, seed, tmp, device)
        if method in LILAW_METHODS:
            meta = {"lilaw_clean2": cell.clean, "lilaw_noisy2": cell.noisy_small}.get(method, cell.meta)
            args = LiLAWConfig(
                **base,
                lilaw_warmup_epochs=cfg["lilaw"]["warmup_epochs"],
                lilaw_detach_weights=method == "lilaw_detached",
                **(_sce_base_loss(opts) if method == "lilaw_sce" else {}),
                lilaw_meta_batch_size=min(bs, len(meta)),
                **{k: v for k, v in cfg["lilaw"].items() if k.startswith("lilaw_")},
            )
            trainer = with_lr_schedule(LiLAWTrainer, cfg)(
                model=model, args=args, data_collator=image_collator, train_dataset=train_dataset,
                meta_dataset=meta, callbacks=callbacks,
            )
        elif method in MLC_METHODS:
            args = former_defaults_mlc_config(
                **base, mlc_method=method, mlc_clean_batch_size=min(opts["mlc"]["clean_batch_size"], len(cell.clean)),
                **{k: v for k, v in opts["mlc"].items() if k.startswith("mlc_")},
            )  # fmt: skip
            cls = {"ebomlc": EBOMLCTrainer, "mlc_d": MLCDTrainer, "mlc": MLCTrainer}[method]
            trainer = with_lr_schedule(cls, cfg)(
                model=model, args=args, data_collator=image_collator, train_dataset=train_dataset,
                clean_dataset=cell.clean, callbacks=callbacks,
            )
        else:
            loss_name = LOSS_METHODS.get(method, "cross_entropy")
            loss = baselines.make_loss(loss_name, **opts.get(method, {}) if method in LOSS_METHODS else {})
            trainer = with_lr_schedule(Trainer, cfg)(
                model=model, args=TrainingArguments(**base), data_collator=image_collator,
                train_dataset=train_dataset, compute_loss_func=loss, callbacks=callbacks,
            )  # fmt: skip
        trainer.remove_callback(PrinterCallback)  # disable_tqdm would print every log dict
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    out: dict[str, Any] = {
        "steps": trainer.state.global_step,
        "train_seconds": seconds,
        "step_times": timer.times,
        "history": evaluator.history if evaluator else [],
        "model": model,
        "trainer": trainer,
    }
    if method in LILAW_METHODS:
        out["lilaw_trajectory"] = [
            [h["step"], h["epoch"], h["lilaw/alpha"], h["lilaw/beta"], h["lilaw/delta"]]
            for h in trainer.state.log_history
            if "lilaw/alpha" in h
        ]
        out["lilaw_final"] = trainer.lilaw_parameters()
    return out


def _sce_base_loss(opts: dict[str, Any]) -> dict[str, Any]:
    sce = opts.get("sce", {})
    return {"lilaw_base_loss": "sce", "lilaw_sce_alpha": sce.get("alpha", 0.1), "lilaw_sce_beta": sce.get("beta", 1.0)}


def one_run_issues(cfg: dict[str, Any], cell: CellData, seed: int, device: str) -> np.ndarray:
    """Likely label errors of the training rows from ONE LiLAW run, by `hf_lilaw.analysis.cleaning.clean_labels`.

    The rows are scored by `LiLAWTrainer.score_samples` at the end of training and pruned by W_α (Otsu's split,
    the API's default); the mask of dropped rows is returned so the retrain uses the in-memory rows.
    """
    import datasets

    from hf_lilaw import clean_labels

    result = train_one("lilaw", cfg, cell, seed, train_dataset=cell.train, device=device, evaluate=False)
    scores = result["trainer"].score_samples(cell.train_eval)
    labels = labels_of(cell.train)
    rows = datasets.Dataset.from_dict({"label": labels.tolist(), "row": list(range(len(labels)))})
    kept = clean_labels(rows, action="prune", scores=scores, score="w_alpha")
    flagged = np.ones(len(labels), dtype=bool)
    flagged[np.asarray(kept["row"], dtype=np.int64)] = False
    return flagged


def out_of_fold_probabilities(cfg: dict[str, Any], cell: CellData, seed: int, device: str) -> np.ndarray:
    """K-fold (stratified on the noisy labels) out-of-fold softmax probabilities of CE models."""
    from scipy.special import softmax
    from sklearn.model_selection import StratifiedKFold

    labels = labels_of(cell.train)
    probs = np.zeros((len(labels), cell.num_labels))
    folds = StratifiedKFold(n_splits=cfg["method_options"]["prune"]["folds"], shuffle=True, random_state=seed)
    for fold_train, fold_held in folds.split(np.zeros(len(labels)), labels):
        result = train_one("ce", cfg, cell, seed, train_dataset=cell.train.select(fold_train), device=device,
                           evaluate=False)  # fmt: skip
        held = cell.train_eval.select(fold_held)
        logits, _ = _predict(result["model"], held, cell, cfg, device)
        probs[fold_held] = softmax(logits, axis=1)
    return probs


def _eval_batches(dataset: Any, cell: CellData, batch_size: int) -> Any:
    if isinstance(dataset, TensorRows):
        return dataset.batches(cell.input_key, batch_size)
    return eval_loader(dataset, batch_size=batch_size, num_workers=4 if torch.cuda.is_available() else 0)


def _predict(model: torch.nn.Module, dataset: Any, cell: CellData, cfg: dict[str, Any], device: str):
    loader = _eval_batches(dataset, cell, cfg["training"]["eval_batch_size"])
    return predict_logits(model, loader, torch.device(device), bf16=cfg["training"]["bf16"])


def run_method(method: str, cfg: dict[str, Any], cell: CellData, seed: int, device: str, cache: dict) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    train_dataset = cell.train
    start = time.perf_counter()
    if method == "clean_only":
        keep = np.flatnonzero(~cell.is_noisy)
        train_dataset = cell.train.select(keep)
        extra["train_rows"] = len(keep)
    elif method == "prune_onerun":
        t0 = time.perf_counter()
        flagged = one_run_issues(cfg, cell, seed, device)
        extra["cv_seconds"] = time.perf_counter() - t0
    elif method.startswith("prune_"):
        if "oof" not in cache:
            t0 = time.perf_counter()
            cache["oof"] = out_of_fold_probabilities(cfg, cell, seed, device)
            cache["oof_seconds"] = time.perf_counter() - t0
        flagged = baselines.PRUNERS[method.removeprefix("prune_")](labels_of(cell.train), cache["oof"])
        extra["cv_seconds"] = cache["oof_seconds"]
    if method.startswith("prune_"):
        keep = np.flatnonzero(~flagged)
        train_dataset = cell.train.select(keep)
        true_pos = int(np.sum(flagged & cell.is_noisy))
        extra.update(
            train_rows=len(keep),
            flagged=int(flagged.sum()),
            flag_precision=true_pos / max(1, int(flagged.sum())),
            flag_recall=true_pos / int(cell.is_noisy.sum()) if cell.is_noisy.any() else float("nan"),
        )
    result = train_one(method, cfg, cell, seed, train_dataset=train_dataset, device=device)
    del result["model"], result["trainer"]
    history = result["history"]
    meta_acc = [h["meta_accuracy"] for h in history]
    best = int(np.argmax(meta_acc))  # the first epoch with the best noisy-validation accuracy
    times = np.asarray(result["step_times"])
    return {
        **extra,
        "steps": result["steps"],
        "train_seconds": result["train_seconds"] + extra.get("cv_seconds", 0.0),
        "wall_seconds": time.perf_counter() - start,
        "step_time_median": float(np.median(times)) if times.size else float("nan"),
        "step_time_mean": float(times.mean()) if times.size else float("nan"),
        "history": history,
        "last_test_accuracy": history[-1]["test_accuracy"],
        "selected_epoch": history[best]["epoch"],
        "selected_test_accuracy": history[best]["test_accuracy"],
        "best_meta_accuracy": history[best]["meta_accuracy"],
        "best_test_accuracy": max(h["test_accuracy"] for h in history),
        **({k: result[k] for k in ("lilaw_trajectory", "lilaw_final") if k in result}),
    }


def has_cleanlab() -> bool:
    try:
        with warnings.catch_warnings():  # importing cleanlab turns every warning off, process-wide, for good
            import cleanlab  # noqa: F401
    except ImportError:
        return False
    return True


def transforms_model(cfg: dict[str, Any]) -> Any:
    """What `image_transforms` reads the preprocessing from, for ``preprocessing: model`` data sets."""
    if cfg["dataset"].get("preprocessing", "tensor") != "model":
        return None
    spec = cfg["model"]
    size = cfg["dataset"].get("image_size", 224)
    if spec["type"] == "hf_pretrained":
        return spec["name"]
    if spec["type"] == "vit":  # a random-init ViT has no saved processor: ViT's defaults at the configured size
        from transformers import ViTImageProcessor

        return ViTImageProcessor(size={"height": size, "width": size})
    return build_model(spec, num_labels=2, in_channels=3, image_size=size)




def condition_name(noise_type: str, rate: float) -> str:
    return "clean (0 %)" if noise_type == "none" else f"{noise_type} {100 * rate:.0f} %"


