"""examples/tabular_classification.py in process: the flags it refuses before loading any data or training."""

import importlib.util
import sys
from pathlib import Path

import pytest

import hf_lilaw

# The examples beside the hf_lilaw that is imported (a checkout on PYTHONPATH), else those beside this test file.
EXAMPLES = next(
    folder
    for folder in (Path(root).resolve().parents[1] / "examples" for root in (hf_lilaw.__file__, __file__))
    if (folder / "tabular_classification.py").is_file()
)


@pytest.fixture
def tabular(monkeypatch):
    """The script as a module, its data loading replaced by a failure: a refused flag never reaches it."""
    spec = importlib.util.spec_from_file_location("tabular_example", EXAMPLES / "tabular_classification.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)

    def loaded(*args, **kwargs):
        raise AssertionError("the run loaded data: the flags were not refused")

    monkeypatch.setattr(module, "load_noisy_splits", loaded)
    yield module
    del sys.modules[spec.name]


def run(tabular, monkeypatch, tmp_path, *flags):
    monkeypatch.setattr(sys, "argv", ["tabular_classification.py", "--output_dir", str(tmp_path), *flags])
    tabular.main()


def test_hidden_sizes_with_a_saved_model_is_refused(tabular, monkeypatch, tmp_path):
    # the saved model's layers were trained and --hidden_sizes 128 128 was ignored, without a word
    with pytest.raises(ValueError, match=r"--hidden_sizes 128 128 sizes a new MLP, but --model my-mlp keeps"):
        run(tabular, monkeypatch, tmp_path, "--model", "my-mlp", "--hidden_sizes", "128", "128")
    with pytest.raises(AssertionError, match="the run loaded data"):  # each alone is taken
        run(tabular, monkeypatch, tmp_path, "--model", "my-mlp")
    with pytest.raises(AssertionError, match="the run loaded data"):
        run(tabular, monkeypatch, tmp_path, "--hidden_sizes", "128", "128")


def test_num_samples_with_real_adult_is_refused(tabular, monkeypatch, tmp_path):
    # --num_samples 500 --dataset adult trained on all 32,561 rows of UCI Adult, without a word
    with pytest.raises(ValueError, match=r"--num_samples 500 sizes synthetic_adult only: --dataset adult loads all"):
        run(tabular, monkeypatch, tmp_path, "--dataset", "adult", "--num_samples", "500")
    with pytest.raises(AssertionError, match="the run loaded data"):
        run(tabular, monkeypatch, tmp_path, "--dataset", "adult", "--max_train_samples", "500")
    with pytest.raises(AssertionError, match="the run loaded data"):
        run(tabular, monkeypatch, tmp_path, "--num_samples", "500")


def test_a_data_set_the_script_cannot_encode_is_refused(tabular, monkeypatch, tmp_path):
    # --dataset digits loaded the images, then crashed with KeyError: 'features'
    with pytest.raises(ValueError, match=r"--dataset digits: this script trains an MLP on 'synthetic_adult' or"):
        run(tabular, monkeypatch, tmp_path, "--dataset", "digits")
    with pytest.raises(AssertionError, match="the run loaded data"):  # any spelling the registry takes
        run(tabular, monkeypatch, tmp_path, "--dataset", "Synthetic-Adult")
