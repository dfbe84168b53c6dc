"""examples/image_classification.py: flags refused at parsing, before any data is loaded or model trained."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "image_classification.py"


@pytest.fixture(scope="module")
def image_example():
    """examples/image_classification.py as a module."""
    spec = importlib.util.spec_from_file_location("image_classification_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def parse(module, monkeypatch, *flags):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--output_dir", "unused", *flags])
    return module.parse_args()


def test_a_repeated_seed_is_refused(image_example, monkeypatch):
    # --seeds 0 1 0 trained seed 0 twice into the same folders, printed "seeds [0, 1, 0]" over a 2-seed table
    with pytest.raises(ValueError, match=r"--seeds 0 1 0 repeats 0: .* counts once .* --seeds 0 1\)"):
        parse(image_example, monkeypatch, "--compare", "--seeds", "0", "1", "0")
    script_args, _ = parse(image_example, monkeypatch, "--compare", "--seeds", "2", "0", "1")
    assert script_args.seeds == [2, 0, 1]


def test_a_negative_train_last_layers_is_refused(image_example, monkeypatch):
    # -1 fine-tuned all of EfficientNet-Lite0 (timm's groups[0:]) but trained only the head of a ViT
    with pytest.raises(ValueError, match=r"--train_last_layers -1: pass the number of last blocks to train, 0 or more"):
        parse(image_example, monkeypatch, "--train_last_layers", "-1")
    assert parse(image_example, monkeypatch, "--train_last_layers", "0")[0].train_last_layers == 0
