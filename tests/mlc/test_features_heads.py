"""Penultimate features of heads that receive a sequence, and the refusal of a detected head that is not one."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from torch import nn
from transformers import RobertaConfig, RobertaForSequenceClassification

from hf_lilaw.mlc import MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer, PenultimateFeatures
from hf_lilaw.mlc.features import pool_features

NUM_LABELS, DIM = 3, 8


def tiny_roberta() -> RobertaForSequenceClassification:
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        num_labels=NUM_LABELS, max_position_embeddings=40, pad_token_id=1,
    )
    return RobertaForSequenceClassification(config).eval()


def _features(features: PenultimateFeatures, model: nn.Module, **inputs) -> torch.Tensor:
    with torch.no_grad(), features.capturing():
        model(**inputs)
        return features.pop()


def test_sequence_head_features_are_out_proj_input_and_ignore_padding():
    model = tiny_roberta()
    features = PenultimateFeatures(model)
    ids = torch.tensor([[0, 5, 6, 7, 2]])
    h1 = _features(features, model, input_ids=ids, attention_mask=torch.ones_like(ids))
    padded = torch.cat([ids, torch.full((1, 5), 1)], 1)  # the same row padded as a longer batch-mate would force
    mask = torch.cat([torch.ones(1, 5), torch.zeros(1, 5)], 1).long()
    h2 = _features(features, model, input_ids=padded, attention_mask=mask)
    torch.testing.assert_close(h1, h2, rtol=0, atol=1e-6)
    assert h1.shape == (1, 16)
    assert (features.module_name, features.source_name, features.output_width) == (
        "classifier", "classifier.out_proj", NUM_LABELS
    )
    with torch.no_grad():  # what out_proj reads: dense + tanh of the first token
        first_token = model.roberta(input_ids=ids).last_hidden_state[:, 0]
        torch.testing.assert_close(h1, torch.tanh(model.classifier.dense(first_token)))
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


class SequenceScore(nn.Module):
    """A GPT-2-like head: `score` maps every position, then the last position's logits are taken."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(DIM, 16)
        self.score = nn.Linear(16, NUM_LABELS)

    def forward(self, x):
        return self.score(self.body(x))[:, -1]


class MeanHead(nn.Module):
    def forward(self, x):
        return x.mean(1)


class SequenceNoLinearHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(DIM, NUM_LABELS)
        self.classifier = MeanHead()

    def forward(self, x):
        return self.classifier(self.body(x))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        # GPT-2's and Llama's classifiers: the advice to name a module that sees a pooled vector could not be followed
        (SequenceScore(), r"The head 'score' scores every position of a sequence \(2, 5, 16\) and the model picks one "
         r"position's scores after it .*does not support this architecture.*LiLAWTrainer / ELRTrainer"),
        (SequenceNoLinearHead(), r"The head 'classifier' receives a sequence of shape \(2, 5, 3\) and has no inner "
         r"nn.Linear, .*pass mlc_feature_module="),
    ],
)
def test_sequence_head_without_a_2d_linear_input_is_refused(model, match):
    features = PenultimateFeatures(model)
    with pytest.raises(ValueError, match=match):
        _features(features, model, x=torch.randn(2, 5, DIM))


def test_pool_features_refuses_sequences_and_keeps_2d_and_4d():
    with pytest.raises(ValueError, match=r"Cannot pool a head input of shape \(2, 5, 4\).*mlc_feature_module="):
        pool_features(torch.randn(2, 5, 4))
    x2, x4 = torch.randn(2, 4), torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(pool_features(x2), x2)
    torch.testing.assert_close(pool_features(x4), x4.mean((2, 3)))


# ---- the detected head must output the logits -------------------------------------------------------------------


class HeadFirst(nn.Module):
    """Registers its head before its body: the last registered nn.Linear is the body's first layer."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(16, NUM_LABELS)
        self.encoder = nn.Sequential(nn.Linear(DIM, 16), nn.Tanh())

    def forward(self, x, labels=None):
        return self.out(self.encoder(x))


def _dataset(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset.from_dict(
        {"x": rng.normal(size=(n, DIM)).astype("float32").tolist(), "label": rng.integers(0, NUM_LABELS, n).tolist()}
    )


def _trainer(tmp_path, model: nn.Module, **overrides) -> MetaLabelCorrectionTrainer:
    args = MetaLabelCorrectionConfig(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, report_to="none", save_strategy="no",
        use_cpu=True, disable_tqdm=True, seed=0, **overrides,
    )
    return MetaLabelCorrectionTrainer(
        model=model, args=args, train_dataset=_dataset(16, 1), clean_dataset=_dataset(16, 2)
    )


def test_detected_head_with_another_width_than_the_logits_is_refused(tmp_path):
    message = (
        "The detected classification head 'encoder.0' outputs 16 values per row but the logits have 3 classes, so its "
        "input is not the penultimate feature. Pass mlc_feature_module='<dotted name of the head>' (the module that "
        "outputs the logits; nn.Linear modules with 3 outputs: ['out'])."
    )
    with pytest.raises(ValueError) as error:
        _trainer(tmp_path, HeadFirst())
    assert str(error.value) == message
    trainer = _trainer(tmp_path, HeadFirst(), mlc_feature_module="out")
    assert (trainer.meta_model.feature_dim, trainer.meta_model.num_labels) == (16, NUM_LABELS)
