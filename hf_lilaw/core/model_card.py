"""Model cards for hf_lilaw runs, rendered from plain values (no trainer object).

The template ``model_card.md`` lives in the repository's top-level ``model_cards/`` folder and ships inside the
wheel as the package data of ``hf_lilaw.model_cards``; it is read with `importlib.resources` (a source checkout
imported through ``PYTHONPATH`` reads the folder directly). The card is rendered with
`huggingface_hub.ModelCard.from_template`; nothing here talks to the Hub.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id
from huggingface_hub.utils.sha import sha_fileobj
from transformers.modelcard import TASK_TAG_TO_NAME_MAPPING, make_markdown_table, parse_log_history

TEMPLATE_NAME = "model_card.md"

# Display names of the metrics of `hf_lilaw.metrics`; other metrics keep their own names.
METRIC_LABELS = {"accuracy": "top-1 accuracy", "top5_accuracy": "top-5 accuracy", "roc_auc": "AUROC", "loss": "loss"}
# Entries of Trainer.evaluate() that describe the evaluation, not the model.
# Entries of an evaluation that describe the evaluation, not the model (as `hf_lilaw.comparison` leaves them out).
_BOOKKEEPING = (
    "epoch", "runtime", "samples_per_second", "steps_per_second", "tokens_per_second", "model_preparation_time",
)  # fmt: skip
_HUB_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")
# Trainer.evaluate()'s metric_key_prefix: "eval" for the validation set, "test" as the examples name the test set.
_SPLIT_PREFIXES = ("eval_", "test_")
# The training-results columns parse_log_history builds before the metrics, in its order.
_RESULTS_LEADING = ("Training Loss", "Epoch", "Step", "Validation Loss")
# transformers' public mappings (config class -> model class, registered classes included) and their Auto class.
_AUTO_CLASSES = {
    "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING": "AutoModelForImageClassification",
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING": "AutoModelForSequenceClassification",
    "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING": "AutoModelForAudioClassification",
}


def template_text() -> str:
    """The card template: the installed package data, else the source checkout's ``model_cards/`` folder."""
    try:
        resource = importlib.resources.files("hf_lilaw.model_cards").joinpath(TEMPLATE_NAME)
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    except ModuleNotFoundError:
        pass
    source = Path(__file__).resolve().parents[2] / "model_cards" / TEMPLATE_NAME
    if source.is_file():
        return source.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"The model-card template {TEMPLATE_NAME} is missing: it ships as package data of hf_lilaw.model_cards "
        "(reinstall hf_lilaw) and lives in model_cards/ of a source checkout."
    )


def looks_like_hub_id(name: Any) -> bool:
    """True for a string that is a valid Hub repo id and not a local path."""
    if not isinstance(name, str) or not name or name.startswith((".", "/", "~")) or os.path.exists(name):
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def starting_weights(model: Any) -> tuple[str | None, str | None]:
    """Where ``model``'s weights came from, as ``(base model Hub id, local source)``.

    A model built from a config (``config._name_or_path`` empty) gives ``(None, None)``: trained from scratch.
    One loaded from the Hub gives its repo id. One loaded from a local folder gives the folder's name as the
    source, and a Hub id only when the checkpoint names its Hub counterpart: a timm ``pretrained_cfg`` with
    ``hf_hub_id`` (as `hf_lilaw.models.efficientnet_lite0_checkpoint` writes it), whose ``source`` then
    describes the local copy only if the folder's ``model.safetensors`` has the ``source_sha256`` recorded with
    it (a model fine-tuned from it and saved elsewhere keeps the marker, not the weights). A config read from a
    checkpoint but given fresh weights (``from_config``) reads as loaded: pass ``finetuned_from`` to the card to
    say otherwise.
    """
    config = getattr(model, "config", None)
    loaded_from = next(
        (n for n in (getattr(config, "_name_or_path", None), getattr(model, "name_or_path", None)) if n), None
    )
    if not loaded_from:
        return None, None
    loaded_from = os.fspath(loaded_from)
    if looks_like_hub_id(loaded_from):
        return loaded_from, None
    pretrained_cfg = getattr(config, "pretrained_cfg", None)
    pretrained_cfg = pretrained_cfg if isinstance(pretrained_cfg, Mapping) else {}
    hub_id = pretrained_cfg.get("hf_hub_id")
    source = pretrained_cfg.get("source") if _is_described_folder(loaded_from, pretrained_cfg) else None
    source = source or f"the local checkpoint `{Path(loaded_from).name}`"
    return (hub_id if looks_like_hub_id(hub_id) else None), source


def _is_described_folder(folder: str, pretrained_cfg: Mapping[str, Any]) -> bool:
    """Whether ``pretrained_cfg["source"]`` describes ``folder``'s weights: its ``model.safetensors`` has the
    recorded sha256. Models saved from that folder copy the marker, but not the weights."""
    expected = pretrained_cfg.get("source_sha256")  # as hf_lilaw.models.efficientnet_lite writes it
    weights = Path(folder) / "model.safetensors"
    if not (isinstance(expected, str) and weights.is_file()):
        return False
    with open(weights, "rb") as f:
        return sha_fileobj(f).hex() == expected


def hub_dataset_ids(dataset: str | Sequence[str] | None) -> list[str]:
    """The entries of ``dataset`` that name a Hub data set (``owner/name``), for the card's ``datasets`` metadata."""
    return [d for d in _listify(dataset) if "/" in d and looks_like_hub_id(d)]


def format_value(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def comparison_table(comparison: Mapping[str, Mapping[str, float]], *, digits: int = 4) -> str:
    """A markdown table of metrics (rows) for each run (columns), plus ``Δ`` (last minus first) for two runs.

    Args:
        comparison: ``{run name: {metric: value}}``, e.g. ``{"Trainer": {"accuracy": 0.61, ...},
            "LiLAWTrainer": {...}}``, e.g. ``trainer.evaluate()`` of each; an ``eval_`` or ``test_`` prefix on
            metric names is dropped, and so is Trainer's bookkeeping (epoch, runtime, throughput).
    """
    if not comparison:
        raise ValueError('comparison is empty; pass {"Trainer": {...metrics}, "LiLAWTrainer": {...}}.')
    runs = {run: {_metric_name(k): v for k, v in metrics.items()} for run, metrics in comparison.items()}
    metrics: list[str] = []
    for values in runs.values():
        metrics += [
            k for k, v in values.items() if k not in metrics and isinstance(v, (int, float)) and k not in _BOOKKEEPING
        ]
    known = [m for m in METRIC_LABELS if m in metrics]
    metrics = known + [m for m in metrics if m not in known]
    names = list(runs)
    lines = []
    for metric in metrics:
        line = {"metric": METRIC_LABELS.get(metric, metric)}
        line.update({run: format_value(runs[run].get(metric, float("nan")), digits) for run in names})
        if len(names) == 2:
            first, last = (runs[n].get(metric, float("nan")) for n in names)
            line["Δ"] = f"{last - first:+.{digits}f}" if not (math.isnan(first) or math.isnan(last)) else "nan"
        lines.append(line)
    return make_markdown_table(lines).rstrip("\n")


def _metric_name(key: str) -> str:
    """``key`` without Trainer's ``eval_``/``test_`` prefix: ``test_accuracy`` -> ``accuracy``."""
    return next((key.removeprefix(p) for p in _SPLIT_PREFIXES if key.startswith(p)), key)


def _hub_metric_names(keys: Iterable[str], *, sets: Iterable[str] = ()) -> set[str]:
    """The Hub metric ids (``accuracy``, ``roc_auc``, ...) among metric names: Trainer.evaluate() keys with or
    without an ``eval_``/``test_`` prefix, and the title-cased names of its parsed log history (``Roc Auc``).
    ``sets``: the names of a dict of evaluation sets, whose keys carry them (``eval_clean_accuracy``)."""
    lowered = [s.lower() for s in sets]
    return {_split_set(_metric_name(k.lower().replace(" ", "_")), lowered)[1] for k in keys} & set(_HUB_METRICS)


def evaluation_sets(log_history: Iterable[Mapping[str, Any]]) -> list[str]:
    """The names of a dict of evaluation sets as logged (``eval_<set>_loss``), in log order; none for one set."""
    return list(dict.fromkeys(
        key[len("eval_") : -len("_loss")] for entry in log_history if "eval_loss" not in entry
        for key in entry if key.startswith("eval_") and key.endswith("_loss") and len(key) > len("eval__loss")
    ))  # fmt: skip


def _split_set(name: str, sets: Iterable[str]) -> tuple[str | None, str]:
    """``name``'s evaluation set and the rest: ``clean_accuracy`` -> ``("clean", "accuracy")`` for the set
    ``clean``; ``(None, name)`` where no set's name starts it."""
    for s in sorted(sets, key=len, reverse=True):  # "clean_2" before "clean"
        if name.startswith(f"{s}_"):
            return s, name[len(s) + 1 :]
    return None, name


def _title(key: str) -> str:
    """A metric key as the card's text names it (`transformers.modelcard.parse_log_history`'s names)."""
    return " ".join(part.capitalize() for part in key.split("_"))


def _training_end(log_history: Sequence[Mapping[str, Any]]) -> int:
    """The index of the log entry that ends training (``train_runtime``), or the log's length without one."""
    return max((i for i, e in enumerate(log_history) if "train_runtime" in e), default=len(log_history))


def noise_description(
    *,
    noise_type: str | None,
    noise_rate: float | None,
    realised_rate: float | None = None,
    inputs_rate: float | None = None,
    realised_from: str = "is_noisy",
) -> str:
    """One line on the noise of the training data.

    Args:
        noise_type, noise_rate: what the user says was injected (the rate asked for, a fraction in [0, 1], which a
            noise type such as ``noise_matrix`` realises only on average).
        realised_rate: the share of training labels changed, read from the data (labels against the
            ``clean_label`` column, else the ``is_noisy`` column), shown beside ``noise_rate`` when both are known.
        realised_from: the column ``realised_rate`` was read from, as the line names it.
        inputs_rate: the share of rows whose ``is_noisy`` flag marks a corrupted input with its label kept
            (`add_input_noise`), when there are such rows.
    """
    if noise_rate is not None and not 0.0 <= noise_rate <= 1.0:
        percent = f" (pass {noise_rate / 100:g} for {noise_rate:g} %)" if 1.0 < noise_rate <= 100.0 else ""
        raise ValueError(f"noise_rate is the share of the training data noised, a fraction in [0, 1]; got {noise_rate}{percent}.")
    kind = noise_type or "unknown type"
    if inputs_rate:
        requested = f", requested {noise_rate:.1%}" if noise_rate is not None else ""
        labels = f"; {realised_rate:.1%} of the training labels changed" if realised_rate else "; labels kept"
        return f"{kind}{requested}: inputs of {inputs_rate:.1%} of the training rows corrupted (`is_noisy`){labels}"
    if realised_rate is not None:
        realised = f"{realised_rate:.1%} of the training labels"
        if noise_rate is not None:
            return f"{kind}, requested {noise_rate:.1%}, realised {realised}, from the `{realised_from}` column"
        return f"{kind}, {realised} (realised, from the `{realised_from}` column)"
    if noise_type is None and noise_rate is None:
        return "not recorded (the training data may hold label noise; the method does not need to know)"
    return f"{kind}, {f'{noise_rate:.1%} requested' if noise_rate is not None else 'rate not recorded'}"


def training_results_table(lines: Sequence[Mapping[str, Any]]) -> str | None:
    """The card's training-results table of `parse_log_history`'s rows, every row in one column order.

    Rows restored from a checkpoint's ``trainer_state.json`` have their keys sorted, rows logged since the resume
    keep the order of ``compute_metrics``; `make_markdown_table` takes the header from the first row but writes each
    row's values in its own order. The columns are parse_log_history's leading ones, then the metrics in the order of
    the newest row that has them (a run's logged order whenever it evaluated after its last resume); a value a row
    lacks shows as ``–``.
    """
    if not lines:
        return None
    metrics = dict.fromkeys(k for line in reversed(lines) for k in line if k not in _RESULTS_LEADING)
    columns = [k for k in _RESULTS_LEADING if any(k in line for line in lines)] + list(metrics)
    return make_markdown_table([{k: line.get(k, "–") for k in columns} for line in lines]).rstrip("\n")


def settings_as_code(config: Any, *, prefix: str, always: Sequence[str] = ()) -> str:
    """The method settings of ``config`` (a dataclass) as keyword arguments of its class, for the card's training
    snippet: the fields in ``always``, then every other field named ``prefix...`` whose value is off its default."""
    names = list(always)
    for f in dataclasses.fields(config):
        if not f.name.startswith(prefix) or f.name in names:
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        if getattr(config, f.name) != default:
            names.append(f.name)
    return ", ".join(f"{name}={getattr(config, name)!r}" for name in names)


def restored_evaluation(log_history: Sequence[Mapping[str, Any]], *, step: int, metric: str) -> dict[str, Any] | None:
    """The evaluation results of a model restored at the end (``load_best_model_at_end``) from the best checkpoint,
    saved at ``step`` by ``metric`` (``metric_for_best_model``), as the card shows them, with an ``Evaluated``
    entry first that says which evaluation it is; ``None`` when the log holds none of that model.

    The last evaluation after training (an explicit `evaluate` of the restored model, on the model as saved) is
    taken, else the one logged at the checkpoint's step (`transformers.modelcard.parse_log_history` would take the
    last one logged, of the last step's model). With several evaluation sets (``eval_dataset`` a dict: one entry
    per set, ``eval_<set>_loss``, ...) the entries of that evaluation are shown together.
    """
    entries, after = _restored_entries(log_history, step=step)
    if not entries:
        return None
    if after:
        where = f"after training, of the best checkpoint (step {step}, by {metric}), restored at the end"
    else:
        where = f"at step {step}, the best checkpoint by {metric}, restored at the end"
    return {"Evaluated": where, **_evaluation_results(entries)}


def _restored_entries(log_history: Sequence[Mapping[str, Any]], *, step: int) -> tuple[list[Mapping[str, Any]], bool]:
    """The log entries of `restored_evaluation`, and whether they were logged after training."""
    end = _training_end(log_history)
    after = [e for e in log_history[end + 1 :] if _is_evaluation(e)]
    if after:
        return after, True
    return [e for e in log_history[:end] if _is_evaluation(e) and e.get("step") == step], False


def last_evaluation(log_history: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The results of the last evaluation logged (every set's entry of it, with several evaluation sets), as the
    card shows them; ``None`` when there is none."""
    entries = _last_entries(log_history)
    return _evaluation_results(entries) if entries else None


def _last_entries(log_history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    entries = [e for e in log_history if _is_evaluation(e)]
    step = entries[-1].get("step") if entries else None
    return [e for e in entries if e.get("step") == step]


def _test_entries(log_history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The last evaluation logged as ``evaluate(test_set, metric_key_prefix="test")`` (the examples' test split)
    after training; one logged before (of the untrained model) or during training describes another model."""
    tests = [e for e in log_history[_training_end(log_history) + 1 :] if any(k.startswith("test_") and k.endswith("_loss") for k in e)]
    return tests[-1:]


def hub_eval_results(
    entries: Sequence[Mapping[str, Any]], *, task: str | None, dataset: str | Sequence[str] | None
) -> list[EvalResult]:
    """The Hub metrics (``accuracy``, ``roc_auc``, ...) of an evaluation's log entries as `EvalResult`s, the card's
    ``model-index``: one per metric and evaluation set, each set of a dict of them (``eval_<set>_accuracy``) named
    as the split of the data set, and ``test_`` entries as the split ``test``. None without a task (a Hub task id
    such as ``image-classification``) or a Hub data set (``owner/name``), both of which the Hub requires of every
    result."""
    dataset_id = next(iter(hub_dataset_ids(dataset)), None)
    if not task or dataset_id is None:
        return []
    values: dict[str, Any] = {}
    for entry in entries:  # in log order: an evaluation of a set logged again replaces its values
        values.update({k: v for k, v in entry.items() if k.startswith(_SPLIT_PREFIXES)})
    sets = evaluation_sets(entries)
    results = []
    for key, value in values.items():
        name = key.removeprefix("eval_")
        split, metric = ("test", name.removeprefix("test_")) if key.startswith("test_") else _split_set(name, sets)
        if metric in _HUB_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool):
            results.append(EvalResult(
                task_type=task, task_name=TASK_TAG_TO_NAME_MAPPING.get(task), dataset_type=dataset_id,
                dataset_name=dataset_id, dataset_split=split, metric_type=metric, metric_value=value,
                metric_name=_title(name),
            ))  # fmt: skip
    return results


def _is_evaluation(entry: Mapping[str, Any]) -> bool:
    # eval_loss for one evaluation set, eval_<set>_loss for each of a dict of them
    return any(key.startswith("eval_") and key.endswith("_loss") for key in entry)


def _evaluation_results(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for entry in entries:  # in log order: an evaluation of a set logged again replaces its values
        for key, value in entry.items():
            key = key.removeprefix("eval_")
            if key not in _BOOKKEEPING and key != "step" and not key.endswith(tuple(f"_{b}" for b in _BOOKKEEPING)):
                results[_title(key)] = value
    return results


def peft_adapter(model: Any) -> Any:
    """The active adapter's config of a PEFT model (whose checkpoints hold only the adapter), else ``None``."""
    from transformers.utils import is_peft_available

    if not is_peft_available():
        return None
    from peft import PeftModel

    return model.peft_config[model.active_adapter] if isinstance(model, PeftModel) else None


def library_of(model: Any) -> str:
    """The card's ``library_name``: ``peft`` for an adapter-only PEFT model, else ``transformers``."""
    return "peft" if peft_adapter(model) is not None else "transformers"


def loading_snippet(model: Any, *, repo_id: str) -> str:
    """Python that loads ``model`` as saved to ``repo_id``: through its Auto class when its class is registered with
    one; a PEFT model as its base model with the adapter loaded onto it (`peft.PeftModel.from_pretrained`)."""
    adapter = peft_adapter(model)
    if adapter is None:
        imports, load = _load_lines(model, source=repo_id, name="model")
        return "\n".join(imports) + "\n\n" + load
    base = model.get_base_model()
    imports, load = _load_lines(base, source=adapter.base_model_name_or_path, name="base", adapter=True)
    imports.append("from peft import PeftModel")
    return "\n".join(imports) + f'\n\n{load}\nmodel = PeftModel.from_pretrained(base, "{repo_id}")'


def _load_lines(model: Any, *, source: str | None, name: str, adapter: bool = False) -> tuple[list[str], str]:
    """(imports, code) that set ``name`` to ``model`` read from ``source``. ``adapter``: ``model`` is a PEFT
    model's base, which the adapter's checkpoint does not hold."""
    import transformers

    model_class = type(model)
    config = getattr(model, "config", None)
    if not hasattr(model_class, "from_pretrained") or (adapter and not source):
        if adapter:  # a plain torch module or a base built from a config: its weights are not in any checkpoint
            build = "build the base model and load its weights as in training"
            return [], f"{name} = {model_class.__name__}(...)  # {build}"
        # a plain torch module: Trainer saved only its state dict
        imports = ["from huggingface_hub import hf_hub_download", "from safetensors.torch import load_file"]
        return imports, (
            f"{name} = {model_class.__name__}(...)  # build the architecture as in training\n"
            f'{name}.load_state_dict(load_file(hf_hub_download("{source}", "model.safetensors")))'
        )
    loader = model_class.__name__
    for mapping_name, auto_class in _AUTO_CLASSES.items():
        mapping = getattr(transformers, mapping_name)
        if config is not None and type(config) in mapping and mapping[type(config)] is model_class:
            loader = auto_class
            break
    module = model_class.__module__ if loader == model_class.__name__ else "transformers"
    imports = [f"from {module} import {loader}"]
    if model_class.__module__.startswith("hf_lilaw"):
        imports.insert(0, "import hf_lilaw.models  # registers hf_lilaw's models with the Auto classes")
    # The base's head as trained (the adapter's copy of it replaces its weights): the base checkpoint's may differ.
    num_labels = getattr(config, "num_labels", None) if adapter else None
    arguments = f'"{source}"' + (f", num_labels={num_labels}" if num_labels is not None else "")
    note = "  # the base model's local folder, as training read it" if adapter and not looks_like_hub_id(source) else ""
    return imports, f"{name} = {loader}.from_pretrained({arguments}){note}"


def library_versions() -> dict[str, str]:
    import datasets
    import huggingface_hub
    import torch
    import transformers

    from .._version import __version__

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


def render_model_card(
    path: str | os.PathLike,
    *,
    method: str,
    method_description: str,
    base_loss: str,
    model_name: str,
    usage: str,
    train_snippet: str,
    citation: str,
    method_table: str | None = None,
    method_facts: Sequence[str] = (),
    method_settings: Mapping[str, Any] | None = None,
    side_sets: Mapping[str, str] | None = None,
    base_model: str | None = None,
    pretrained_from: str | None = None,
    dataset: str | Sequence[str] | None = None,
    tags: Sequence[str] = (),
    language: str | Sequence[str] | None = None,
    license: str | None = None,
    noise_text: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    log_history: Sequence[Mapping[str, Any]] = (),
    comparison: Mapping[str, Mapping[str, float]] | None = None,
    plot_file: str | None = None,
    best_checkpoint: tuple[int, str] | None = None,
    library_name: str = "transformers",
    task: str | None = None,
) -> str:
    """Write a model card (``README.md``-style markdown with YAML metadata) to ``path``; returns the path.

    Args:
        path: the card file; its folder is created if missing.
        method: the method's name as shown (``"LiLAW"``, ``"EBOMLC"``, ...); also a metadata tag.
        method_description: one paragraph on what the method did to the training.
        base_loss: the per-sample loss the method weights or corrects.
        model_name: title of the card.
        usage: Python that loads the model (see `loading_snippet`).
        train_snippet: Python that trains a model the same way.
        citation: BibTeX of the method.
        method_table: a markdown table of the method's learned state (e.g. initial and final α, β, δ).
        method_facts: sentences about the run (e.g. the number of meta steps).
        method_settings: the method's settings, ``{name: value}``.
        side_sets: the side data sets, ``{"Meta set": "16 samples, ..."}``.
        base_model: Hub id of the model fine-tuned from (the card's ``base_model`` metadata).
        pretrained_from: where the starting weights were read from when that is not the Hub repo itself (a local
            copy or checkpoint). With neither this nor ``base_model`` the card says trained from scratch.
        dataset: Hub id(s) of the training data (``owner/name``: the ``datasets`` metadata) or a description.
        tags: metadata tags (``hf_lilaw`` and ``noisy-labels`` are always added).
        language, license: metadata.
        noise_text: the label noise of the training data (see `noise_description`).
        hyperparameters: Trainer hyperparameters, ``{name: value}``.
        log_history: Trainer's ``state.log_history``: evaluation results (the last evaluation of the evaluation
            sets, and the last ``evaluate(test_set, metric_key_prefix="test")``) and the training-results table.
        comparison: ``{run: {metric: value}}`` of runs with and without the method, shown as a table.
        plot_file: an image next to the card to show (relative path).
        best_checkpoint: ``(step, metric_for_best_model)`` of the best checkpoint the model was restored from at
            the end (``load_best_model_at_end``): the evaluation results are that model's (`restored_evaluation`).
        library_name: the library that loads the saved model (metadata): ``peft`` for an adapter (`library_of`).
        task: the Hub task id (``image-classification``, ``text-classification``, ...): with a Hub data set in
            ``dataset``, the evaluation results shown go into the ``model-index`` metadata (`hub_eval_results`).
    """
    path = os.fspath(path)
    _, eval_lines, eval_results = parse_log_history(list(log_history))
    if best_checkpoint is not None:
        step, metric = best_checkpoint
        eval_results = restored_evaluation(log_history, step=step, metric=metric)  # never the last step's
        shown = _restored_entries(log_history, step=step)[0]
    else:
        shown = _last_entries(log_history)  # the entries of eval_results
        if not eval_results:  # parse_log_history reads eval_loss only: a dict of evaluation sets logs eval_<set>_loss
            eval_results = last_evaluation(log_history)
    tested = _test_entries(log_history)
    if tested:  # the test split's results (Test Loss, ...) beside the evaluation sets' own
        eval_results = {**(eval_results or {}), **_evaluation_results(tested)}
        shown = [*shown, *tested]
    eval_results = {k: format_value(v) for k, v in (eval_results or {}).items()}
    # The results keep one eval_ entry only; evaluate(test_set, metric_key_prefix="test") logs count too.
    logged = [k for entry in log_history for k in entry if k.startswith(_SPLIT_PREFIXES)]
    compared = list((comparison or {}).values())
    metric_names = _hub_metric_names(
        [*eval_results, *logged, *(k for m in compared for k in m)], sets=evaluation_sets([*log_history, *compared])
    )
    datasets_list = _listify(dataset)
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=hub_dataset_ids(datasets_list) or None,
        library_name=library_name,
        license=license,
        language=language,
        tags=list(dict.fromkeys([method.lower(), "hf_lilaw", "noisy-labels", *tags, "generated_from_trainer"])),
        metrics=sorted(metric_names) or None,
        eval_results=hub_eval_results(shown, task=task, dataset=datasets_list) or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_str=template_text(),
        model_name=model_name,
        base_model=base_model,
        pretrained_from=pretrained_from,
        method=method,
        method_description=method_description,
        base_loss=base_loss,
        dataset_text=", ".join(datasets_list) or "an unspecified data set",
        noise_text=noise_text or noise_description(noise_type=None, noise_rate=None),
        side_sets=dict(side_sets or {}),
        method_table=method_table,
        method_facts=list(method_facts),
        method_settings=dict(method_settings or {}),
        plot_file=plot_file,
        comparison_table=comparison_table(comparison) if comparison else None,
        hyperparameters=dict(hyperparameters or {}),
        eval_results=eval_results,
        eval_table=training_results_table(eval_lines),
        usage=usage,
        train_snippet=train_snippet,
        versions=library_versions(),
        citation=citation,
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    card.save(path)
    return path
