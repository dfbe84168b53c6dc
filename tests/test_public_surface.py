"""The package face: a short top level, every public subpackage's names importable, and the names the top level
used to carry still resolving (with a warning that names their new home)."""

from __future__ import annotations

import importlib
import warnings

import pytest

import hf_lilaw

TOP_LEVEL = {
    "__version__",
    # trainers and configs
    "BaseTrainer", "LiLAWConfig", "LiLAWTrainer", "ELRConfig", "ELRTrainer", "MetaLabelCorrectionConfig",
    "MetaLabelCorrectionTrainer", "EBOMLCTrainer", "MLCDTrainer", "MLCTrainer",
    # losses
    "CrossEntropy", "FocalLoss", "GeneralizedCrossEntropy", "SymmetricCrossEntropy", "make_loss",
    # main tools
    "add_label_noise", "add_input_noise", "TrainingDynamicsRecorder", "find_label_issues", "clean_labels",
    "compute_classification_metrics", "compare_runs",
}  # fmt: skip
PUBLIC = ["analysis", "comparison", "core", "data", "elr", "functional", "lilaw", "losses", "metrics", "mlc", "models",
          "noise", "scripts"]  # fmt: skip


def test_the_top_level_holds_exactly_the_trainers_configs_losses_and_main_tools():
    assert set(hf_lilaw.__all__) == TOP_LEVEL
    assert sorted(hf_lilaw.__all__) == hf_lilaw.__all__
    assert set(hf_lilaw._MOVED).isdisjoint(dir(hf_lilaw))  # the old names are not advertised


@pytest.mark.parametrize("package", ["hf_lilaw", *(f"hf_lilaw.{name}" for name in PUBLIC)])
def test_every_public_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__, f"{package} lists no public names"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_the_top_level_re_exports_the_subpackages_objects():
    assert hf_lilaw.ELRTrainer is importlib.import_module("hf_lilaw.elr").ELRTrainer
    assert hf_lilaw.find_label_issues is importlib.import_module("hf_lilaw.analysis").find_label_issues
    assert hf_lilaw.add_label_noise is importlib.import_module("hf_lilaw.noise").add_label_noise


@pytest.mark.parametrize("name", sorted(hf_lilaw._MOVED))
def test_a_name_that_left_the_top_level_warns_and_names_its_new_home(name):
    home = hf_lilaw._MOVED[name]
    module = importlib.import_module(home)
    assert name in module.__all__
    with pytest.warns(FutureWarning, match=rf"hf_lilaw\.{name} moved to {home}\.{name}: .*from {home} import {name}"):
        value = getattr(hf_lilaw, name)
    assert value is getattr(module, name)


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    with pytest.raises(AttributeError, match="module 'hf_lilaw' has no attribute 'no_such_name'"):
        hf_lilaw.no_such_name  # noqa: B018
    from hf_lilaw import data

    assert data.load_ucr.__module__ == "hf_lilaw.data.ucr"


def test_the_type_checking_imports_match_the_lazy_names():
    """What IDEs and type checkers see (the ``if TYPE_CHECKING:`` imports) is what the package exports lazily."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(hf_lilaw.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    names = {a.asname or a.name for n in ast.walk(block) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert names == set(hf_lilaw._EXPORTS)
