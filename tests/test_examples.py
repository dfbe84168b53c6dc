"""The example scripts: `--help`, and a few offline steps of `--compare` each (subprocesses, run side by side)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPTS = ("image_classification.py", "time_series_classification.py", "tabular_classification.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TINY = [
    "--compare", "--max_steps", "3", "--max_train_samples", "48", "--max_eval_samples", "40",
    "--per_device_train_batch_size", "16", "--logging_steps", "1", "--lilaw_warmup_steps", "1", "--disable_tqdm", "true",
]  # fmt: skip


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
HELP = """
import os, runpy, sys
for script in sys.argv[1:]:
    print(f"==== {script}", flush=True)
    sys.argv, sys.path[0] = [script, "--help"], os.path.dirname(script)  # as `python script --help` would
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        print(f"==== exit {exit.code}", flush=True)
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every subprocess of this file, started together: the --help pass and four tiny offline --compare runs."""
    out = tmp_path_factory.mktemp("examples")
    commands = {
        "help": ["-c", HELP, *(str(EXAMPLES / s) for s in SCRIPTS)],
        # the offline default model (pretrained EfficientNet-Lite0) over three seeds, as the README main job
        "image": [str(EXAMPLES / "image_classification.py"), *TINY, "--seeds", "0", "1", "2", "--output_dir", str(out / "image")],
        "last_layers": [
            str(EXAMPLES / "image_classification.py"), *TINY, "--seeds", "0", "--train_last_layers", "1",
            "--noise_type", "asymmetric", "--output_dir", str(out / "last_layers"),
        ],
        # the offline default UCR set (ItalyPowerDemand, 2 classes) with input noise
        "time_series": [
            str(EXAMPLES / "time_series_classification.py"), *TINY, "--seeds", "0", "1",
            "--noise_type", "ts_covariate", "--output_dir", str(out / "time_series"),
        ],
        "tabular": [
            str(EXAMPLES / "tabular_classification.py"), *TINY, "--num_samples", "300", "--output_dir", str(out / "tabular"),
        ],
    }  # fmt: skip
    return out, run_all(commands, timeout=900)


def test_help(runs):
    result = runs[1]["help"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.count("==== exit 0") == len(SCRIPTS), result.stdout[-3000:]
    helps = {}
    for part in result.stdout.split("==== ")[1:]:
        header, _, text = part.partition("\n")
        if not header.startswith("exit"):
            helps[Path(header).name] = text
    assert set(helps) == set(SCRIPTS)
    for script, text in helps.items():
        assert text.startswith("usage:"), (script, text[:500])
        for flag in (
            "--compare", "--seeds", "--noise_type", "--noise_rate", "--model", "--dataset", "--lilaw_alpha",
            "--num_train_epochs",
        ):  # fmt: skip
            assert flag in text, (script, flag)
    for flag in ("--image_size", "--train_last_layers", "--bf16", "--per_device_train_batch_size", "--learning_rate"):
        assert flag in helps["image_classification.py"], flag
    assert "--group_column" in helps["tabular_classification.py"]
    assert "--data_dir" in helps["time_series_classification.py"] and "--length" in helps["time_series_classification.py"]


SEEDS = {"image": [0, 1, 2], "last_layers": [0], "time_series": [0, 1], "tabular": [42]}


@pytest.mark.parametrize("name", ["image", "last_layers", "time_series", "tabular"])
def test_compare_smoke(runs, name):
    out, results = runs
    result = results[name]
    assert result.returncode == 0, result.stdout[-5000:]
    stdout = result.stdout
    assert "| metric" in stdout and "| Trainer | LiLAWTrainer | Δ" in stdout
    assert "| Δ (LiLAW − Trainer) | p (paired t) |" in stdout  # the summary over seeds
    for row in ("| top-1 accuracy", "| AUROC"):
        assert row in stdout, row
    assert ("| top-5 accuracy" in stdout) == (name in ("image", "last_layers"))  # only with more than 5 classes
    if name == "tabular":
        assert "| accuracy_Female" in stdout and "| demographic_parity_difference" in stdout

    comparison = json.loads((out / name / "comparison.json").read_text())
    seeds = SEEDS[name]
    assert comparison["seeds"] == seeds
    assert set(comparison["per_seed"]) == {str(s) for s in seeds}
    for record in comparison["per_seed"].values():
        assert set(record["metrics"]) == {"Trainer", "LiLAWTrainer"}
        assert 0.0 <= record["metrics"]["LiLAWTrainer"]["accuracy"] <= 1.0
    accuracy = comparison["summary"]["accuracy"]
    values = [comparison["per_seed"][str(s)]["metrics"]["Trainer"]["accuracy"] for s in seeds]
    assert accuracy["Trainer"]["mean"] == pytest.approx(sum(values) / len(values))
    assert set(accuracy["difference"]) == {"mean", "sd", "p_value"}
    if name == "image":
        assert comparison["model"].startswith("EfficientNet-Lite0")
    if name == "time_series":
        assert "ItalyPowerDemand" in comparison["dataset"]

    run_dirs = [out / name] if len(seeds) == 1 else [out / name / f"seed_{s}" for s in seeds]
    for run_dir in run_dirs:
        for png in ("lilaw_parameters.png", "weight_histogram.png", "lilaw/lilaw_parameters.png"):
            assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert (run_dir / "trainer" / "model.safetensors").is_file()
        assert (run_dir / "lilaw" / "model.safetensors").is_file()
        card = (run_dir / "lilaw" / "README.md").read_text()
        assert "- lilaw" in card and "## With and without LiLAW" in card
