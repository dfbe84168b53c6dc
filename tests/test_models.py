"""The time-series LSTM and the tabular MLP: shapes, loss, Auto-class round trips."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, default_data_collator

from hf_lilaw.data import load_synthetic_ecg, vector_transform
from hf_lilaw.models import (
    LSTMClassifierConfig,
    MLPClassifierConfig,
    MLPForTabularClassification,
    StackedLSTMForTimeSeriesClassification,
)


def test_lstm_save_load_round_trip_gives_identical_logits(tmp_path):
    torch.manual_seed(0)
    config = LSTMClassifierConfig(hidden_size=16, num_layers=2, bidirectional=True, num_labels=5)
    model = StackedLSTMForTimeSeriesClassification(config).eval()
    x = torch.randn(4, 30)
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "lilaw_lstm"
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is StackedLSTMForTimeSeriesClassification
    assert (loaded.config.hidden_size, loaded.config.bidirectional, loaded.config.num_labels) == (16, True, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)


def test_lstm_shapes_and_loss():
    torch.manual_seed(0)
    model = StackedLSTMForTimeSeriesClassification(
        LSTMClassifierConfig(input_size=3, hidden_size=8, num_labels=4)
    ).eval()
    labels = torch.tensor([0, 3])
    out = model(input_values=torch.randn(2, 11, 3), labels=labels)
    assert out.logits.shape == (2, 4)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    loss, logits = model(torch.randn(2, 11, 3), labels=labels, return_dict=False)
    assert logits.shape == (2, 4) and loss.dim() == 0
    with pytest.raises(ValueError, match="input_size"):
        model(torch.randn(2, 11))  # one channel, but the config says three


def test_lstm_learns_synthetic_ecg_from_the_collated_batch():
    torch.manual_seed(0)
    ecg = load_synthetic_ecg(num_samples=120, length=40, seed=0)["train"].with_transform(
        vector_transform(keep_columns=())
    )
    batch = default_data_collator([ecg[i] for i in range(len(ecg))])
    config = LSTMClassifierConfig(hidden_size=16, num_layers=2, dropout=0.0, num_labels=5)
    model = StackedLSTMForTimeSeriesClassification(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(40):
        out = model(**batch)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0]
    majority = batch["labels"].bincount().max() / len(batch["labels"])
    assert (out.logits.argmax(1) == batch["labels"]).float().mean() > majority + 0.2


def test_mlp_round_trip_and_required_input_size(tmp_path):
    torch.manual_seed(0)
    model = MLPForTabularClassification(MLPClassifierConfig(input_size=6, hidden_sizes=[8, 4], num_labels=2)).eval()
    x = torch.randn(5, 6)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is MLPForTabularClassification and list(loaded.config.hidden_sizes) == [8, 4]
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    labels = torch.tensor([0, 1, 0, 1, 1])
    out = model(x, labels=labels)
    assert out.logits.shape == (5, 2)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels), rtol=0, atol=0)
    with pytest.raises(ValueError, match="input_size=<number of features>"):
        MLPForTabularClassification(MLPClassifierConfig())


def test_mlp_refuses_configs_its_cross_entropy_cannot_train():
    # one logit made the loss 0 for every row, and regression targets were cast to class indices, without a word
    for kwargs in ({"num_labels": 1}, {"num_labels": 1, "problem_type": "regression"},
                   {"num_labels": 3, "problem_type": "multi_label_classification"}):  # fmt: skip
        with pytest.raises(ValueError, match=r"single-label classifier .* num_labels to the number of classes"):
            MLPForTabularClassification(MLPClassifierConfig(input_size=3, **kwargs))
    config = MLPClassifierConfig(input_size=3, num_labels=2, problem_type="single_label_classification")
    assert MLPForTabularClassification(config).classifier.out_features == 2



def test_lstm_refuses_configs_its_cross_entropy_cannot_train():
    # as the MLP: one logit made the loss 0 for every row (0.0 on targets 0.3 / 0.7 / 0.9 under regression)
    for kwargs in ({"num_labels": 1}, {"num_labels": 1, "problem_type": "regression"}):
        with pytest.raises(ValueError, match=r"single-label classifier .* num_labels to the number of classes"):
            StackedLSTMForTimeSeriesClassification(LSTMClassifierConfig(input_size=1, **kwargs))
    assert StackedLSTMForTimeSeriesClassification(LSTMClassifierConfig(input_size=1, num_labels=2)).classifier.out_features == 2

def test_saved_models_load_without_hf_lilaw_through_their_own_code(tmp_path):
    # transformers did not know the model types, so a folder loaded where hf_lilaw.models was not imported failed with
    # "Transformers does not recognize this architecture ... pip install --upgrade transformers"
    import json
    import subprocess
    import sys

    torch.manual_seed(0)
    mlp = MLPForTabularClassification(MLPClassifierConfig(input_size=3, hidden_sizes=[4], num_labels=2)).eval()
    lstm = StackedLSTMForTimeSeriesClassification(LSTMClassifierConfig(hidden_size=4, num_labels=3)).eval()
    x = {"mlp": torch.randn(2, 3), "lstm": torch.randn(2, 7)}
    for name, model in (("mlp", mlp), ("lstm", lstm)):
        model.save_pretrained(tmp_path / name)
        torch.save(x[name], tmp_path / f"{name}_x.pt")
        with torch.no_grad():
            torch.save(model(x[name]).logits, tmp_path / f"{name}_logits.pt")
        assert (tmp_path / name / f"{name}.py").is_file()
        assert json.loads((tmp_path / name / "config.json").read_text())["auto_map"]["AutoConfig"].startswith(f"{name}.")
        # with hf_lilaw.models imported, its own classes
        assert type(AutoModelForSequenceClassification.from_pretrained(tmp_path / name)) is type(model)
    script = f"""
import sys, torch
from transformers import AutoModelForSequenceClassification
for name in ("mlp", "lstm"):
    try:
        AutoModelForSequenceClassification.from_pretrained(r"{tmp_path}" + "/" + name)
    except ValueError as error:
        assert "trust_remote_code=True" in str(error), error
    else:
        raise AssertionError("loaded custom code without trust_remote_code")
    model = AutoModelForSequenceClassification.from_pretrained(r"{tmp_path}" + "/" + name, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(torch.load(r"{tmp_path}" + f"/{{name}}_x.pt")).logits
    assert torch.equal(logits, torch.load(r"{tmp_path}" + f"/{{name}}_logits.pt")), name
assert not any(m.startswith("hf_lilaw") for m in sys.modules)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.stdout.endswith("ok\n"), result.stderr[-2000:]  # after transformers' [y/N] prompt
