"""Model cards for `LiLAWTrainer` runs: a README.md with the LiLAW settings, the learned α, β, δ and their plot.

The card is rendered from ``model_cards/lilaw_model_card.md`` (a Jinja template) with
`huggingface_hub.ModelCard.from_template`; the YAML metadata comes from `ModelCardData`. Nothing here
talks to the Hub: `Trainer.push_to_hub` uploads the folder the card was written into.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id
from transformers.modelcard import extract_hyperparameters_from_trainer, make_markdown_table, parse_log_history

from .columns import NOISY_FLAG_COLUMN
from ..analysis.plots import plot_lilaw_parameters

logger = logging.getLogger(__name__)

_TEMPLATE_NAME = "lilaw_model_card.md"
# A source checkout reads the repository's model_cards/; an installed wheel ships a copy under
# <prefix>/share/hf_lilaw/model_cards (pyproject's data-files).
TEMPLATE_PATH = next(
    (
        path
        for path in (
            Path(__file__).resolve().parents[2] / "model_cards" / _TEMPLATE_NAME,
            Path(sys.prefix) / "share" / "hf_lilaw" / "model_cards" / _TEMPLATE_NAME,
        )
        if path.is_file()
    ),
    Path(__file__).resolve().parents[2] / "model_cards" / _TEMPLATE_NAME,
)
PLOT_FILE = "lilaw_parameters.png"
CARD_TAGS = ("lilaw", "hf_lilaw", "noisy-labels")

LILAW_CITATION = """\
@article{moturu2025lilaw,
  title   = {{LiLAW}: Lightweight Learnable Adaptive Weighting to Meta-Learn Sample Difficulty and Improve Noisy Training},
  author  = {Moturu, Abhishek and Goldenberg, Anna and Taati, Babak},
  journal = {arXiv preprint arXiv:2509.20786},
  year    = {2025}
}"""

# Display names of the metrics of `hf_lilaw.metrics`; other metrics keep their own names.
METRIC_LABELS = {"accuracy": "top-1 accuracy", "top5_accuracy": "top-5 accuracy", "roc_auc": "AUROC", "loss": "loss"}
_HUB_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")


def looks_like_hub_id(name: Any) -> bool:
    """True for a string that is a valid Hub repo id and not a local path."""
    if not isinstance(name, str) or not name or name.startswith((".", "/", "~")) or os.path.exists(name):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def comparison_table(comparison: Mapping[str, Mapping[str, float]], *, digits: int = 4) -> str:
    """A markdown table of metrics (rows) for each run (columns), plus ``Δ`` (last minus first) for two runs.

    Args:
        comparison: ``{run name: {metric: value}}``, e.g. ``{"Trainer": {"accuracy": 0.61, ...},
            "LiLAWTrainer": {...}}``; an ``eval_`` prefix on metric names is dropped.
    """
    if not comparison:
        raise ValueError('comparison is empty; pass {"Trainer": {...metrics}, "LiLAWTrainer": {...}}.')
    runs = {run: {k.removeprefix("eval_"): v for k, v in metrics.items()} for run, metrics in comparison.items()}
    metrics: list[str] = []
    for values in runs.values():
        metrics += [k for k in values if k not in metrics and isinstance(values[k], (int, float))]
    known = [m for m in METRIC_LABELS if m in metrics]
    metrics = known + [m for m in metrics if m not in known]
    names = list(runs)
    lines = []
    for metric in metrics:
        line = {"metric": METRIC_LABELS.get(metric, metric)}
        line.update({run: _fmt(runs[run].get(metric, float("nan")), digits) for run in names})
        if len(names) == 2:
            first, last = (runs[n].get(metric, float("nan")) for n in names)
            line["Δ"] = f"{last - first:+.{digits}f}" if not (math.isnan(first) or math.isnan(last)) else "nan"
        lines.append(line)
    return make_markdown_table(lines).rstrip("\n")


def _noise_text(trainer: Any, noise_type: str | None, noise_rate: float | None) -> str:
    train = trainer.train_dataset
    if noise_rate is None and isinstance(train, datasets.Dataset) and NOISY_FLAG_COLUMN in train.column_names:
        flags = train.with_format("numpy", columns=[NOISY_FLAG_COLUMN])[:][NOISY_FLAG_COLUMN]
        rate = float(flags.mean()) if len(flags) else 0.0
        return f"{noise_type or 'unknown type'}, {rate:.1%} of the training labels (realised, from the `is_noisy` column)"
    if noise_type is None and noise_rate is None:
        return "not recorded (the training data may hold label noise; LiLAW does not need to know)"
    rate_text = f"{noise_rate:.1%} of the training samples" if noise_rate is not None else "rate not recorded"
    return f"{noise_type or 'unknown type'}, {rate_text}"


def _lilaw_settings(trainer: Any) -> dict[str, Any]:
    opts = trainer.lilaw_args
    warmup = (
        f"{opts['lilaw_warmup_steps']} optimizer steps"
        if opts["lilaw_warmup_steps"] is not None
        else f"{opts['lilaw_warmup_epochs']:g} epoch(s)"
    )
    per_param = {
        f"{key} ({name})": opts[f"lilaw_{name}_{key}"]
        for key in ("lr", "weight_decay")
        for name in ("alpha", "beta", "delta")
        if opts[f"lilaw_{name}_{key}"] is not None
    }
    return {
        "meta learning rate (SGD)": opts["lilaw_lr"],
        "meta weight decay": opts["lilaw_weight_decay"],
        **per_param,
        "warm-up (unweighted, no meta steps)": warmup,
        "meta batch size": opts["lilaw_meta_batch_size"] or trainer.args.per_device_train_batch_size,
        "meta fraction (when no meta set is given)": opts["lilaw_meta_fraction"],
        "base loss": opts["lilaw_base_loss"] + (
            f" (γ = {opts['lilaw_focal_gamma']})" if opts["lilaw_base_loss"] == "focal" else ""
        ),
        "weights detached in the model's backward": opts["lilaw_detach_weights"],
        "meta forward mode": opts["lilaw_meta_forward_mode"],
    }


_AUTO_CLASSES = ("AutoModelForImageClassification", "AutoModelForSequenceClassification", "AutoModelForAudioClassification")


def _usage(model: Any, repo_id: str) -> str:
    """A snippet that loads the pushed model: through its Auto class when it has one."""
    import transformers

    cls = type(model)
    if not hasattr(cls, "from_pretrained"):  # a plain torch module: Trainer saved only its state dict
        return (
            "from huggingface_hub import hf_hub_download\nfrom safetensors.torch import load_file\n\n"
            f"model = {cls.__name__}(...)  # build the architecture as in training\n"
            f'model.load_state_dict(load_file(hf_hub_download("{repo_id}", "model.safetensors")))'
        )
    loader = cls.__name__
    for auto in _AUTO_CLASSES:
        mapping = getattr(transformers, auto)._model_mapping
        if type(getattr(model, "config", None)) in mapping and mapping[type(model.config)] is cls:
            loader = auto
            break
    imports = f"from transformers import {loader}" if loader != cls.__name__ else f"from {cls.__module__} import {loader}"
    if cls.__module__.startswith("hf_lilaw"):
        imports = "import hf_lilaw  # registers hf_lilaw's models with the Auto classes\n" + imports
    return f'{imports}\n\nmodel = {loader}.from_pretrained("{repo_id}")'


def _versions() -> dict[str, str]:
    import huggingface_hub
    import torch
    import transformers

    from .. import __version__

    return {
        "hf_lilaw": __version__,
        "Transformers": transformers.__version__,
        "PyTorch": torch.__version__,
        "Datasets": datasets.__version__,
        "huggingface_hub": huggingface_hub.__version__,
    }


def _listify(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def write_lilaw_model_card(
    trainer: Any,
    output_dir: str,
    *,
    model_name: str | None = None,
    finetuned_from: str | None = None,
    dataset: str | list[str] | None = None,
    tags: str | list[str] | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    noise_type: str | None = None,
    noise_rate: float | None = None,
    comparison: Mapping[str, Mapping[str, float]] | None = None,
    plot: bool = True,
) -> str:
    """Writes ``README.md`` (and ``lilaw_parameters.png``) for a `LiLAWTrainer` run into ``output_dir``.

    Only the main process (``trainer.is_world_process_zero()``) writes; the path is returned on every process.

    Args:
        trainer: A `LiLAWTrainer` (trained or not).
        output_dir: Folder of the card; created if missing.
        model_name: Title of the card; defaults to the hub model id's name or ``output_dir``'s name.
        finetuned_from: Base model's Hub id; defaults to the model config's ``_name_or_path`` when that looks
            like a Hub id (a local path or a random initialisation gives none).
        dataset: Hub id(s) of the training data (metadata) or a description of it.
        tags: Extra metadata tags; ``lilaw``, ``hf_lilaw`` and ``noisy-labels`` are always there.
        noise_type, noise_rate: The label noise put into the training data. Without a rate, the realised rate is
            read from the training set's ``is_noisy`` column when it has one.
        comparison: ``{run: {metric: value}}`` of runs with and without LiLAW, shown as a table.
        plot: Write and show the plot of α, β, δ over training (needs LiLAW entries in the log history).

    Returns:
        The path of the README.
    """
    path = os.path.join(output_dir, "README.md")
    if not trainer.is_world_process_zero():
        return path
    if not TEMPLATE_PATH.is_file():
        raise FileNotFoundError(f"The LiLAW model-card template is missing at {TEMPLATE_PATH}.")
    os.makedirs(output_dir, exist_ok=True)
    model = trainer.model
    config = getattr(model, "config", None)

    base_model = finetuned_from
    if base_model is None:
        candidates = (getattr(config, "_name_or_path", None), getattr(model, "name_or_path", None))
        base_model = next((c for c in candidates if looks_like_hub_id(c)), None)
    datasets_list = _listify(dataset)
    hub_id = getattr(trainer, "hub_model_id", None) or trainer.args.hub_model_id
    if model_name is None:
        model_name = hub_id.split("/")[-1] if hub_id else Path(output_dir).absolute().name

    _, eval_lines, eval_results = parse_log_history(trainer.state.log_history)
    eval_results = {k: _fmt(v) for k, v in (eval_results or {}).items()}
    hyperparameters = {k: getattr(v, "value", v) for k, v in extract_hyperparameters_from_trainer(trainer).items()}
    metric_names = {m for m in _HUB_METRICS for k in eval_results if k.lower().replace(" ", "_") == m}
    for metrics in (comparison or {}).values():
        metric_names |= {m for m in _HUB_METRICS if m in metrics or f"eval_{m}" in metrics}

    plot_file = None
    if plot:
        try:
            plot_lilaw_parameters(trainer.state.log_history, os.path.join(output_dir, PLOT_FILE))
            plot_file = PLOT_FILE
        except ValueError:  # no LiLAW log yet (no training, or fewer steps than logging_steps)
            logger.info("No LiLAW parameters in the log history yet; the model card has no plot of α, β, δ.")

    model_tags = list(getattr(model, "model_tags", None) or [])
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=[d for d in datasets_list if looks_like_hub_id(d)] or None,
        library_name="transformers",
        license=license,
        language=language,
        tags=list(dict.fromkeys([*CARD_TAGS, *_listify(tags), *model_tags, "generated_from_trainer"])),
        metrics=sorted(metric_names) or None,
    )
    meta = trainer.meta_dataset
    meta_size = f"{len(meta)} samples" if hasattr(meta, "__len__") else "a stream"
    opts = trainer.lilaw_args
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_name=model_name,
        base_model=base_model,
        dataset_text=", ".join(datasets_list) or "an unspecified data set",
        noise_text=_noise_text(trainer, noise_type, noise_rate),
        meta_text=f"{meta_size}, used only for LiLAW's meta steps" if meta is not None else "none yet",
        initial={name: _fmt(float(opts[f"lilaw_{name}"])) for name in ("alpha", "beta", "delta")},
        final={name: _fmt(value) for name, value in trainer.lilaw_parameters().items()},
        meta_steps=trainer.lilaw_state.meta_steps,
        skipped_meta_steps=int(trainer.lilaw_state.skipped_meta_steps),
        lilaw_settings=_lilaw_settings(trainer),
        plot_file=plot_file,
        comparison_table=comparison_table(comparison) if comparison else None,
        hyperparameters=hyperparameters,
        eval_results=eval_results,
        eval_table=make_markdown_table(eval_lines).rstrip("\n") if eval_lines else None,
        usage=_usage(model, hub_id or model_name),
        versions=_versions(),
        citation=LILAW_CITATION,
    )
    card.save(path)
    return path
