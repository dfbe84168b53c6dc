"""The installed package: lazy top-level import, and a wheel that carries the model-card template."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "sklearn", "scipy", "PIL")


def run_python(code: str, *, pythonpath: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_hf_lilaw_loads_no_heavy_optional_library(tmp_path):
    # transformers itself imports PIL when Pillow is installed; hf_lilaw must add none of the four.
    out = run_python(
        "import json, sys, torch, datasets, transformers\n"
        f"heavy = {HEAVY!r}\n"
        "before = {m for m in heavy if m in sys.modules}\n"
        "import hf_lilaw\n"
        "loaded = {m for m in heavy if m in sys.modules}\n"
        "report = {'new': sorted(loaded - before), 'loaded': sorted(loaded), 'version': hf_lilaw.__version__,\n"
        "          'trainer_before': 'transformers.trainer' in sys.modules}\n"
        "hf_lilaw.LiLAWTrainer\n"
        "report['trainer_after'] = 'transformers.trainer' in sys.modules\n"
        "print(json.dumps(report))\n",
        pythonpath=str(ROOT), cwd=tmp_path,
    )
    report = json.loads(out)
    assert report["new"] == []
    assert not {"matplotlib", "sklearn", "scipy"} & set(report["loaded"])
    assert report["version"] == "0.1.0"
    assert (report["trainer_before"], report["trainer_after"]) == (False, True)  # the trainers load on first use


def test_wheel_ships_the_template_and_an_installed_copy_renders_a_card(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "tests", "benchmarks", "examples", "docs", "build",
                                                                "*.egg-info", "__pycache__", ".venv"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source), "-w",
                    str(wheels)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("hf_lilaw-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hf_lilaw/model_cards/model_card.md" in names
    assert "hf_lilaw/evaluate_modules/lilaw_classification.py" in names
    packages = {str(p.parent.relative_to(ROOT)).replace(os.sep, "/") for p in (ROOT / "hf_lilaw").rglob("__init__.py")}
    assert packages <= {name.rsplit("/", 1)[0] for name in names}  # pyproject's package list covers every folder

    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    out = run_python(
        "import hf_lilaw, hf_lilaw.metrics\n"
        "from hf_lilaw.core.model_card import render_model_card\n"
        "path = render_model_card('card/README.md', method='EBOMLC', method_description='Labels corrected.', "
        "base_loss='cross_entropy', model_name='demo', usage='pass', train_snippet='pass', citation='@misc{x}')\n"
        "metric = hf_lilaw.metrics.load_classification_metric()\n"
        "assert metric.compute(predictions=[[2.0, 0.0], [0.0, 1.0]], references=[0, 0])['accuracy'] == 0.5\n"
        "print(hf_lilaw.__file__)\n"
        "print(open(path).read())\n",
        pythonpath=f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}", cwd=tmp_path,
    )
    location, card = out.split("\n", 1)
    assert location.startswith(str(target))
    assert "with **EBOMLC** from the `hf_lilaw` library" in card
    assert "- Base loss: cross_entropy" in card and "- ebomlc" in card  # the method is also a metadata tag
