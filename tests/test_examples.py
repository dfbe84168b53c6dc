"""The example scripts: `--help`, and a few offline steps of `--compare` each (subprocesses, run side by side)."""

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
        "image": [str(EXAMPLES / "image_classification.py"), *TINY, "--output_dir", str(out / "image")],
        "timm": [
            str(EXAMPLES / "image_classification.py"), *TINY, "--backend", "timm", "--train_last_layers", "1",
            "--noise_type", "asymmetric", "--output_dir", str(out / "timm"),
        ],
        "time_series": [
            str(EXAMPLES / "time_series_classification.py"), *TINY, "--num_samples", "300",
            "--noise_type", "ts_covariate", "--output_dir", str(out / "time_series"),
        ],
        "tabular": [
            str(EXAMPLES / "tabular_classification.py"), *TINY, "--num_samples", "300", "--output_dir", str(out / "tabular"),
        ],
    }  # fmt: skip
    return out, run_all(commands)


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
        for flag in ("--compare", "--noise_type", "--noise_rate", "--model", "--dataset", "--lilaw_alpha", "--num_train_epochs"):
            assert flag in text, (script, flag)
    for flag in ("--backend", "--train_last_layers", "--bf16", "--per_device_train_batch_size", "--learning_rate"):
        assert flag in helps["image_classification.py"], flag
    assert "--group_column" in helps["tabular_classification.py"]
    assert "--data_dir" in helps["time_series_classification.py"]


@pytest.mark.parametrize("name", ["image", "timm", "time_series", "tabular"])
def test_compare_smoke(runs, name):
    out, results = runs
    result = results[name]
    assert result.returncode == 0, result.stdout[-5000:]
    stdout = result.stdout
    assert "| metric" in stdout and "| Trainer | LiLAWTrainer | Δ" in stdout
    for row in ("| top-1 accuracy", "| top-5 accuracy", "| AUROC"):
        assert row in stdout, row
    if name == "tabular":
        assert "| accuracy_Female" in stdout and "| demographic_parity_difference" in stdout
    run_dir = out / name
    for png in ("lilaw_parameters.png", "weight_histogram.png", "lilaw/lilaw_parameters.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert (run_dir / "comparison.json").is_file()
    assert (run_dir / "trainer" / "model.safetensors").is_file()
    assert (run_dir / "lilaw" / "model.safetensors").is_file()
    card = (run_dir / "lilaw" / "README.md").read_text()
    assert "- lilaw" in card and "## With and without LiLAW" in card
