"""MetaLabelCorrectionTrainer on tiny random-init models and tiny in-memory data (CPU, no Hub)."""

import math
import os
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import (
    HfArgumentParser,
    ResNetConfig,
    ResNetForImageClassification,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
    TrainerCallback,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)

from hf_lilaw.mlc import (
    EBOMLCTrainer,
    LabelCorrectionNetwork,
    MetaLabelCorrectionConfig,
    MetaLabelCorrectionTrainer,
    MLCDTrainer,
    MLCTrainer,
    PenultimateFeatures,
)
from hf_lilaw.mlc.features import find_classification_head
from hf_lilaw.mlc.trainer import CLEAN_SET_FITTED_LOSS, MLC_STATE_NAME

NUM_LABELS = 3
_PROTOTYPES = np.random.default_rng(0).normal(size=(NUM_LABELS, 3, 8, 8)).astype("float32")


def make_dataset(n: int, seed: int, noise: float = 0.0, label_offset: int = 0) -> Dataset:
    """Class prototypes plus noise; a fraction `noise` of the labels is resampled at random."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NUM_LABELS, n)
    x = _PROTOTYPES[y] + 0.5 * rng.normal(size=(n, 3, 8, 8)).astype("float32")
    flip = rng.random(n) < noise
    y[flip] = rng.integers(0, NUM_LABELS, int(flip.sum()))
    return Dataset.from_dict({"pixel_values": x.tolist(), "label": (y + label_offset).tolist()})


TRAIN = make_dataset(48, seed=1, noise=0.4)
CLEAN = make_dataset(16, seed=2)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU())
        self.fc = nn.Linear(16, NUM_LABELS)

    def forward(self, pixel_values, labels=None):
        return self.fc(self.body(pixel_values))


class NoLinearNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, NUM_LABELS, 3)

    def forward(self, pixel_values, labels=None):
        return self.conv(pixel_values).mean((2, 3))


def tiny_vit() -> ViTForImageClassification:
    config = ViTConfig(
        image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=NUM_LABELS,
    )
    return ViTForImageClassification(config)


def tiny_timm() -> TimmWrapperForImageClassification:
    # timm's `test_resnet` is a ~0.4M-parameter ResNet; random init, nothing downloaded.
    return TimmWrapperForImageClassification(TimmWrapperConfig(architecture="test_resnet", num_labels=NUM_LABELS))


def make_args(tmp_path, **overrides) -> MetaLabelCorrectionConfig:
    values = dict(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8, learning_rate=1e-2,
        logging_steps=2, report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
    )
    values.update(overrides)
    return MetaLabelCorrectionConfig(**values)


def make_trainer(tmp_path, model=None, cls=MetaLabelCorrectionTrainer, clean=CLEAN, **overrides):
    torch.manual_seed(0)
    model = TinyNet() if model is None else model
    return cls(model=model, args=make_args(tmp_path, **overrides), train_dataset=TRAIN, clean_dataset=clean)


# ---- config -----------------------------------------------------------------------------------------------------


def test_config_through_hf_argument_parser(tmp_path):
    (args,) = HfArgumentParser(MetaLabelCorrectionConfig).parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--mlc_method", "mlc_d", "--mlc_inner_steps", "3",
         "--mlc_lower_loss_weights", "1.0", "0.25", "--mlc_feature_module", "fc", "--per_device_train_batch_size", "4",
         "--mlc_skip_gate", "false", "--mlc_ebomlc_variant", "released"]
    )
    assert args.mlc_skip_gate is False and args.resolved_skip_gate is False
    assert (args.mlc_ebomlc_variant, args.resolved_mixture_space) == ("released", "probs")
    assert (args.mlc_method, args.mlc_inner_steps, args.mlc_feature_module) == ("mlc_d", 3, "fc")
    assert args.mlc_lower_loss_weights == [1.0, 0.25]
    assert args.mlc_clean_batch_size == 4 and args.logging_steps == 10
    defaults = (args.mlc_rho, args.mlc_barrier_threshold, args.mlc_barrier_scale, args.mlc_barrier_eta, args.mlc_meta_lr)
    assert defaults == (0.2, 0.25, 0.5, 0.5, 1e-5)
    assert args.mlc_skip_gate_init is None and args.resolved_skip_gate_init is None  # no gate, nothing to start
    mlc_fields = [f for f in MetaLabelCorrectionConfig.__dataclass_fields__.values() if f.name.startswith("mlc_")]
    assert len(mlc_fields) >= 15 and all(f.metadata.get("help") for f in mlc_fields)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"gradient_accumulation_steps": 2}, "Set gradient_accumulation_steps=1 and raise"),
        ({"fp16": True}, "use bf16=True"),
        ({"mlc_method": "bome"}, "mlc_method must be one of"),
        ({"mlc_rho": 1.5}, r"mlc_rho must lie in \[0, 1\]"),
        ({"mlc_method": "mlc", "mlc_inner_steps": 2}, "use mlc_method='mlc_d'"),
        ({"mlc_clean_batch_size": 1}, "mlc_clean_batch_size must be >= 2"),
        ({"mlc_lower_loss_weights": [0.0, 1.0]}, "positive noisy weight"),
        ({"mlc_barrier_scale": -1.0}, "mlc_barrier_scale must be >= 0"),
        ({"mlc_clean_cache": "always"}, "mlc_clean_cache must be .auto., .force. or .off."),
    ],
)
def test_config_errors_name_the_fix(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        make_args(tmp_path, **overrides)


def test_a_trainer_validates_the_config_with_its_own_method_and_late_changes(tmp_path):
    # MLCTrainer with the authors' SGD recipe and a gate start, MLCDTrainer with 2 inner steps: refused before, the
    # config being checked against the default method (EBOMLC), whose gate is off under SGD and which takes 1 step.
    assert make_trainer(tmp_path, cls=MLCTrainer, optim="sgd", mlc_skip_gate_init=0.5).meta_model.skip_gate is True
    with pytest.warns(UserWarning, match="MLC-D is kept as an ablation"):
        assert make_trainer(tmp_path, cls=MLCDTrainer, mlc_inner_steps=2).args.mlc_inner_steps == 2
    with pytest.raises(ValueError, match="use mlc_method='mlc_d'"):
        make_trainer(tmp_path, cls=EBOMLCTrainer, mlc_inner_steps=2)
    with pytest.raises(ValueError, match="the skip gate is off for this configuration"):
        make_trainer(tmp_path, optim="sgd", mlc_skip_gate_init=0.5)  # EBOMLC, ungated under SGD
    # set after the config was built: EBOMLC trained with each step's first micro-batch's gradient thrown away
    for cls, late, match in ((EBOMLCTrainer, "gradient_accumulation_steps", "Set gradient_accumulation_steps=1"),
                             (MetaLabelCorrectionTrainer, "label_smoothing_factor", "Set label_smoothing_factor=0")):
        args = make_args(tmp_path)
        setattr(args, late, 2 if late == "gradient_accumulation_steps" else 0.3)
        with pytest.raises(ValueError, match=match):
            cls(model=TinyNet(), args=args, train_dataset=TRAIN, clean_dataset=CLEAN)


# ---- features ---------------------------------------------------------------------------------------------------


def _capture(model: nn.Module, x: torch.Tensor, **kwargs) -> tuple[PenultimateFeatures, torch.Tensor]:
    features = PenultimateFeatures(model, **kwargs)
    with torch.no_grad(), features.capturing():
        model(x)
        return features, features.pop()


def test_features_vit_head_input_is_the_pooled_cls_token():
    torch.manual_seed(0)
    model, x = tiny_vit().eval(), torch.randn(4, 3, 8, 8)
    features, h = _capture(model, x)
    assert features.module_name == "classifier"
    with torch.no_grad():
        cls_token = model.vit(x).last_hidden_state[:, 0]
    torch.testing.assert_close(h, cls_token)


def test_features_timm_wrapper_uses_get_classifier():
    torch.manual_seed(0)
    model, x = tiny_timm().eval(), torch.randn(4, 3, 16, 16)
    features, h = _capture(model, x)
    assert features.head is model.timm_model.get_classifier()
    with torch.no_grad():
        expected = model.timm_model.forward_head(model.timm_model.forward_features(x), pre_logits=True)
    torch.testing.assert_close(h, expected)


def test_features_transformers_resnet_pools_the_4d_head_input():
    torch.manual_seed(0)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=NUM_LABELS)
    model, x = ResNetForImageClassification(config).eval(), torch.randn(2, 3, 16, 16)
    features, h = _capture(model, x)
    assert features.module_name == "classifier" and h.shape == (2, 16)
    with torch.no_grad():
        torch.testing.assert_close(h, model.resnet(x).pooler_output.flatten(1))


@pytest.mark.parametrize("module_name", [None, "fc"])
def test_features_plain_module(module_name):
    torch.manual_seed(0)
    model, x = TinyNet(), torch.randn(4, 3, 8, 8)
    features, h = _capture(model, x, module_name=module_name)
    assert features.module_name == "fc"
    torch.testing.assert_close(h, model.body(x))


def test_features_errors_name_mlc_feature_module():
    with pytest.raises(ValueError, match="mlc_feature_module"):
        PenultimateFeatures(NoLinearNet())
    with pytest.raises(ValueError, match="mlc_feature_module='head'"):
        PenultimateFeatures(TinyNet(), module_name="head")


# ---- errors before training -------------------------------------------------------------------------------------


def test_error_without_clean_set(tmp_path):
    with pytest.raises(ValueError, match="clean_dataset="):
        MetaLabelCorrectionTrainer(model=TinyNet(), args=make_args(tmp_path), train_dataset=TRAIN)


def test_error_clean_labels_out_of_range(tmp_path):
    trainer = make_trainer(tmp_path, clean=make_dataset(16, seed=2, label_offset=1))
    with pytest.raises(ValueError, match=r"clean_dataset has labels in \[1, 3\] but the model outputs 3 classes"):
        trainer.train()  # refused by the pre-flight, before the first step
    assert trainer.state.global_step == 0


def test_error_head_not_found(tmp_path):
    with pytest.raises(ValueError, match="mlc_feature_module"):
        make_trainer(tmp_path, model=NoLinearNet())


def test_error_head_not_called(tmp_path):
    model = TinyNet()
    model.unused_head = nn.Linear(16, NUM_LABELS)
    with pytest.raises(ValueError, match="'unused_head' was not called during the forward"):
        make_trainer(tmp_path, model=model, mlc_feature_module="unused_head")


def test_error_clean_batch_larger_than_clean_set(tmp_path):
    with pytest.raises(ValueError, match="pass a smaller batch size or a larger clean_dataset"):
        make_trainer(tmp_path, mlc_clean_batch_size=32)


def test_mlc_lookahead_is_the_clipped_step_the_trainer_takes(tmp_path, monkeypatch):
    import hf_lilaw.functional.mlc_second_order as second_order

    lookahead_steps, seen = second_order.lookahead_steps, {}

    def spy(optimizer, params, grads, **kwargs):
        steps = lookahead_steps(optimizer, params, grads, **kwargs)
        seen["lookahead"] = torch.cat([s.detach().flatten() for s in steps])
        seen.setdefault("norms", []).append(float(torch.cat([g.detach().flatten() for g in grads]).norm()))
        return steps

    monkeypatch.setattr(second_order, "lookahead_steps", spy)
    trainer = make_trainer(tmp_path, mlc_method="mlc", optim="sgd", optim_args="momentum=0.9", learning_rate=0.5,
                           max_grad_norm=0.1, max_steps=3)  # fmt: skip
    gaps = []

    class Gap(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            self.before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            taken = self.before - torch.cat([p.detach().flatten() for p in model.parameters()])
            gaps.append(float((taken - seen["lookahead"]).abs().max()))

    trainer.add_callback(Gap())
    trainer.train()
    assert min(seen["norms"]) > 0.1  # every step was clipped
    assert len(gaps) == 3 and max(gaps) < 1e-6


def with_unlabelled_rows(dataset: Dataset, rows: list[int]) -> Dataset:
    return dataset.map(lambda row, i: {"label": -100 if i in rows else row["label"]}, with_indices=True)


@pytest.mark.filterwarnings("ignore:MLC-D is kept as an ablation")
@pytest.mark.parametrize("method", ["ebomlc", "mlc", "mlc_d"])
@pytest.mark.parametrize("where", ["train_dataset", "clean_dataset"])
def test_rows_labelled_minus_100_are_refused_before_the_first_step(tmp_path, method, where):
    train = with_unlabelled_rows(TRAIN, [5, 9]) if where == "train_dataset" else TRAIN
    clean = with_unlabelled_rows(CLEAN, [5, 9]) if where == "clean_dataset" else CLEAN
    torch.manual_seed(0)
    trainer = MetaLabelCorrectionTrainer(model=TinyNet(), args=make_args(tmp_path, mlc_method=method),
                                         train_dataset=train, clean_dataset=clean)  # fmt: skip
    name = {"ebomlc": "EBOMLC", "mlc": "MLC", "mlc_d": "MLC-D"}[method]
    with pytest.raises(ValueError) as error:
        trainer.train()
    assert trainer.state.global_step == 0
    assert str(error.value).startswith(
        f"{where} row 5 is labelled -100 (unlabelled; 2 such rows), but {name} needs a label on every row: "
    )
    assert f"Drop the rows labelled -100 from {where}" in str(error.value)


def test_a_streamed_training_set_is_checked_for_minus_100_batch_by_batch(tmp_path):
    stream = with_unlabelled_rows(TRAIN, [11]).to_iterable_dataset()
    torch.manual_seed(0)
    trainer = MetaLabelCorrectionTrainer(model=TinyNet(), args=make_args(tmp_path, mlc_method="mlc"),
                                         train_dataset=stream, clean_dataset=CLEAN)  # fmt: skip
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(ValueError, match=r"train_dataset example 3 of the batch of step 2 is labelled -100"):
        trainer.train()
    assert trainer.state.global_step == 1  # the first batch (rows 0-7) trained; the second was refused whole
    assert any((a - b).abs().max() > 0 for a, b in zip(before, trainer.model.parameters()))


def test_a_streamed_clean_set_is_checked_for_minus_100_naming_its_batch(tmp_path):
    clean = with_unlabelled_rows(CLEAN, [2]).to_iterable_dataset()
    torch.manual_seed(0)
    trainer = MetaLabelCorrectionTrainer(model=TinyNet(), args=make_args(tmp_path, mlc_method="mlc"),
                                         train_dataset=TRAIN, clean_dataset=clean)  # fmt: skip
    with pytest.raises(ValueError, match=r"clean_dataset example \d+ of the clean batch of step \d+ is labelled -100"):
        trainer.train()


def test_method_aliases(tmp_path):
    assert make_trainer(tmp_path, cls=MLCTrainer).args.mlc_method == "mlc"
    with pytest.raises(ValueError, match="EBOMLCTrainer runs mlc_method='ebomlc'"):
        make_trainer(tmp_path, cls=EBOMLCTrainer, mlc_method="mlc")


def test_plain_training_arguments_are_converted(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, report_to="none", use_cpu=True)
    trainer = MetaLabelCorrectionTrainer(model=TinyNet(), args=args, train_dataset=TRAIN, clean_dataset=CLEAN)
    assert isinstance(trainer.args, MetaLabelCorrectionConfig)
    assert (trainer.args.mlc_method, trainer.args.mlc_clean_batch_size) == ("ebomlc", 4)


# ---- training ---------------------------------------------------------------------------------------------------


def _clean_ce(model: nn.Module) -> float:
    x, y = torch.tensor(CLEAN["pixel_values"]), torch.tensor(CLEAN["label"])
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=x)
    return F.cross_entropy(getattr(out, "logits", out), y).item()


@pytest.mark.parametrize(("method", "extra"), [("ebomlc", {}), ("mlc_d", {"mlc_inner_steps": 2}), ("mlc", {})])
def test_training_plain_module(tmp_path, method, extra):
    trainer = make_trainer(tmp_path, mlc_method=method, max_steps=10, **extra)
    meta_before = [p.detach().clone() for p in trainer.meta_model.parameters()]
    clean_before = _clean_ce(trainer.model)
    trainer.train()

    assert _clean_ce(trainer.model) < clean_before
    assert any(not torch.equal(a, b) for a, b in zip(meta_before, trainer.meta_model.parameters()))
    main_ids = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert main_ids == {id(p) for p in trainer.model.parameters()}
    assert main_ids.isdisjoint(id(p) for p in trainer.meta_model.parameters())

    logs = [log for log in trainer.state.log_history if "mlc/upper_loss" in log]
    assert len(logs) == 5
    keys = ["mlc/upper_loss", "mlc/lower_loss", "mlc/label_kept"] + (["mlc/lambda"] if method != "mlc" else [])
    assert all(math.isfinite(log[k]) for log in logs for k in keys)
    assert all(0 < log["mlc/label_kept"] < 1 for log in logs)
    if method != "mlc":
        assert all(log["mlc/lambda"] >= 0 for log in logs)
    # The feature hook lives only inside each forward: the user's model carries no hook of ours afterwards.
    assert not any(module._forward_pre_hooks for module in trainer.model.modules())


@pytest.mark.parametrize("method", ["ebomlc", "mlc_d", "mlc"])
def test_training_tiny_vit(tmp_path, method):
    trainer = make_trainer(tmp_path, model=tiny_vit(), mlc_method=method, max_steps=4, logging_steps=1)
    model_before = [p.detach().clone() for p in trainer.model.parameters()]
    meta_before = [p.detach().clone() for p in trainer.meta_model.parameters()]
    trainer.train()
    # The label-correction network reads the ViT's pooled features through its classifier head.
    assert find_classification_head(trainer.model)[1] is trainer.model.classifier
    logs = [log for log in trainer.state.log_history if "mlc/lower_loss" in log]
    assert len(logs) == 4 and all(math.isfinite(v) for log in logs for k, v in log.items() if k.startswith("mlc/"))
    # Both levels trained: the main model and the meta model moved, and the feature hook is gone afterwards.
    assert any(not torch.equal(a, b) for a, b in zip(model_before, trainer.model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(meta_before, trainer.meta_model.parameters()))
    assert not any(module._forward_pre_hooks for module in trainer.model.modules())


@pytest.mark.parametrize("make_model", [tiny_vit, tiny_timm])
def test_gradient_checkpointing_leaves_the_mlc_hypergradient_unchanged(tmp_path, make_model):
    # A checkpointed layer recomputes its forward in the backward, after functional_call put the parameters back:
    # the look-ahead's forward was differentiated at w instead of w' (silently: 1 % off for the ViT, 50 times the
    # norm for timm's ResNet).
    def first_meta_gradient(checkpointing: bool) -> torch.Tensor:
        torch.manual_seed(0)
        trainer = make_trainer(tmp_path / str(checkpointing), model=make_model(), mlc_method="mlc", max_steps=1,
                               learning_rate=1.0, gradient_checkpointing=checkpointing)  # fmt: skip
        seen, step = [], trainer.meta_optimizer.step

        def spy(*args, **kwargs):
            seen.append(torch.cat([p.grad.flatten().clone() for p in trainer.meta_model.parameters()]))
            return step(*args, **kwargs)

        trainer.meta_optimizer.step = spy
        trainer.train()
        flags = ("gradient_checkpointing", "grad_checkpointing")  # transformers' and timm's
        assert (True in [getattr(m, a, None) for m in trainer.model.modules() for a in flags]) == checkpointing
        return seen[0]

    plain, checkpointed = first_meta_gradient(False), first_meta_gradient(True)
    assert plain.norm() > 0
    torch.testing.assert_close(checkpointed, plain, rtol=1e-5, atol=1e-7)


def test_training_tiny_timm_wrapper(tmp_path):
    trainer = make_trainer(tmp_path, model=tiny_timm(), max_steps=2, logging_steps=1, per_device_train_batch_size=4)
    trainer.train()
    assert find_classification_head(trainer.model)[1] is trainer.model.timm_model.get_classifier()
    logs = [log for log in trainer.state.log_history if "mlc/lambda" in log]
    assert len(logs) == 2 and all(math.isfinite(log["mlc/upper_loss"]) for log in logs)


def test_evaluation_reports_plain_cross_entropy(tmp_path):
    trainer = make_trainer(tmp_path)
    metrics = trainer.evaluate(eval_dataset=CLEAN)
    assert metrics["eval_loss"] == pytest.approx(_clean_ce(trainer.model), rel=1e-5)


class TupleNet(TinyNet):
    def forward(self, pixel_values, labels=None):
        features = self.body(pixel_values)
        return self.fc(features), features


@pytest.mark.parametrize("cls", [EBOMLCTrainer, MLCTrainer])
def test_predict_gives_a_tuple_models_outputs_with_and_without_labels(tmp_path, cls):
    # With labels the outputs were reduced to the logits, without them the whole tuple came back.
    trainer = make_trainer(tmp_path, model=TupleNet(), cls=cls, per_device_eval_batch_size=8)
    labelled, unlabelled = trainer.predict(CLEAN), trainer.predict(CLEAN.remove_columns(["label"]))
    assert isinstance(labelled.predictions, tuple) and isinstance(unlabelled.predictions, tuple)
    assert [p.shape for p in labelled.predictions] == [(len(CLEAN), NUM_LABELS), (len(CLEAN), 16)]
    for a, b in zip(labelled.predictions, unlabelled.predictions):
        np.testing.assert_array_equal(a, b)
    loss = F.cross_entropy(torch.as_tensor(labelled.predictions[0]), torch.tensor(CLEAN["label"])).item()
    assert labelled.metrics["test_loss"] == pytest.approx(loss, rel=1e-5)


def test_resume_restores_meta_model_and_optimizer(tmp_path):
    run = dict(max_steps=6, save_strategy="steps", save_steps=3)
    full = make_trainer(tmp_path / "full", **run)
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-3"
    assert {MLC_STATE_NAME, "mlc_state_rank0.pt"} <= set(os.listdir(checkpoint))

    resumed = make_trainer(tmp_path / "resumed", **run)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.mlc_state.clean_sampler.batches_drawn == full.mlc_state.clean_sampler.batches_drawn == 6
    for a, b in zip(full.meta_model.parameters(), resumed.meta_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    state_full = full.meta_optimizer.state_dict()["state"]
    state_resumed = resumed.meta_optimizer.state_dict()["state"]
    assert state_full[0]["step"] == state_resumed[0]["step"] == 6


def test_resume_without_mlc_state_starts_the_meta_model_fresh(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=4, save_strategy="steps", save_steps=2)
    trainer.train()
    for name in (MLC_STATE_NAME, "mlc_state_rank0.pt", "hf_lilaw_manifest.json"):  # as plain Trainer saves it
        os.remove(tmp_path / "checkpoint-2" / name)
    fresh = make_trainer(tmp_path, max_steps=4)
    fresh.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert fresh.state.global_step == 4 and fresh.mlc_state.clean_sampler.batches_drawn == 2


def test_a_resume_under_another_method_or_meta_setting_is_refused_before_anything_loads(tmp_path):
    # Both trainers write mlc_state.pt: an EBOMLC checkpoint resumed by MLCTrainer switched algorithm halfway, and a
    # new mlc_meta_lr was silently replaced by the saved optimizer's while the card showed the new one.
    make_trainer(tmp_path, cls=EBOMLCTrainer, max_steps=2, save_strategy="steps", save_steps=2).train()
    checkpoint = str(tmp_path / "checkpoint-2")
    for cls, overrides, changed in (
        (MLCTrainer, {}, "method: saved 'EBOMLC', now 'MLC'; mlc_method: saved 'ebomlc', now 'mlc'"),
        (EBOMLCTrainer, {"mlc_meta_lr": 0.5}, "mlc_meta_lr: saved 1e-05, now 0.5"),
    ):
        resumed = make_trainer(tmp_path, cls=cls, max_steps=4, **overrides)
        with pytest.raises(ValueError, match=re.escape(f"was saved with other method settings than this run's ({changed})")):
            resumed.train(resume_from_checkpoint=checkpoint)
        assert resumed.state.global_step == 0 and resumed.mlc_state.steps == 0
    # a cache mode changes how fast a step runs, not what it computes: free to change
    resumed = make_trainer(tmp_path, cls=EBOMLCTrainer, max_steps=4, mlc_clean_cache="off")
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.state.global_step == 4 and resumed.mlc_state.steps == 4


# ---- meta model, defaults and warnings (issue: MLC under the Trainer's defaults) --------------------------------


def test_meta_model_uses_xavier_normal_layers_and_zero_biases():
    torch.manual_seed(0)
    net = LabelCorrectionNetwork(feature_dim=200, num_labels=10, label_embedding_dim=56, hidden_dim=128)
    linears = [m for m in net.net if isinstance(m, nn.Linear)]
    assert len(linears) == 3 and all(torch.count_nonzero(m.bias) == 0 for m in linears)
    for m in linears:
        fan_out, fan_in = m.weight.shape
        assert m.weight.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.1)


def test_skip_gate_mixes_softmax_and_the_given_label():
    torch.manual_seed(0)
    net = LabelCorrectionNetwork(feature_dim=4, num_labels=3, label_embedding_dim=2, hidden_dim=5, skip_gate=True)
    h, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    out = net.net(torch.cat([h, net.label_embedding(y)], -1))
    g = torch.sigmoid(out[:, 3:])
    expected = (1 - g) * torch.softmax(out[:, :3], -1) + g * F.one_hot(y, 3)
    torch.testing.assert_close(net(h, y), expected)
    torch.testing.assert_close(net.log_probs(h, y), expected.log())
    assert net.net[-1].out_features == 4 and 0 < g.min() and g.max() < 1


def test_skip_gate_init_starts_the_gate_at_its_value_and_the_labels_near_the_given_ones(tmp_path):
    torch.manual_seed(0)
    net = LabelCorrectionNetwork(feature_dim=4, num_labels=3, label_embedding_dim=2, hidden_dim=5, skip_gate=True,
                                 skip_gate_init=0.98)  # fmt: skip
    assert net.net[-1].bias[-1].item() == pytest.approx(math.log(0.98 / 0.02))
    assert torch.count_nonzero(net.net[-1].bias[:3]) == 0  # the class scores keep MLC's zero bias
    h, y = torch.zeros(5, 4), torch.tensor([0, 1, 2, 0, 1])
    gate, _ = net.gate_and_logits(h, y)
    # Zero features: the gate's pre-activation is its bias plus the label embedding's (small Xavier) contribution.
    assert gate.min().item() > 0.95 and net(h, y).gather(1, y[:, None]).min().item() > 0.95
    trainer = make_trainer(tmp_path, cls=MLCTrainer, mlc_skip_gate_init=0.9)
    assert trainer.meta_model.net[-1].bias[-1].item() == pytest.approx(math.log(9.0))
    assert trainer.model_card_values()["method_settings"]["skip gate init"] == 0.9


def test_the_gate_starts_at_the_given_labels_by_default_and_0_5_is_the_released_start(tmp_path):
    default = make_trainer(tmp_path / "default", cls=MLCTrainer)
    assert default.args.resolved_skip_gate_init == 0.98
    assert default.meta_model.net[-1].bias[-1].item() == pytest.approx(math.log(0.98 / 0.02))
    assert default.model_card_values()["method_settings"]["skip gate init"] == 0.98
    # 0.5 is a zero bias: exactly the network MLC's released code builds.
    released = make_trainer(tmp_path / "released", cls=MLCTrainer, mlc_skip_gate_init=0.5)
    torch.manual_seed(0)
    shape = {"feature_dim": released.meta_model.feature_dim, "num_labels": NUM_LABELS, "skip_gate": True}
    reference = LabelCorrectionNetwork(**shape)
    torch.manual_seed(0)
    rebuilt = LabelCorrectionNetwork(**shape, skip_gate_init=0.5)
    for a, b in zip(reference.state_dict().values(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert released.meta_model.net[-1].bias[-1].item() == 0.0


def test_label_kept_logs_how_much_of_the_given_labels_the_corrections_keep(tmp_path):
    # Started at the given labels, the corrections keep nearly all of them; MLC's released start spreads half away.
    logged = {}
    for gate_init in (0.999, 0.5):
        trainer = make_trainer(tmp_path / str(gate_init), cls=MLCTrainer, mlc_skip_gate_init=gate_init, max_steps=1,
                               logging_steps=1, mlc_meta_lr=1e-8)  # fmt: skip
        trainer.train()
        logged[gate_init] = trainer.state.log_history[0]["mlc/label_kept"]
    assert logged[0.999] > 0.99
    assert 0.3 < logged[0.5] < 0.8


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"mlc_skip_gate_init": 1.0}, "mlc_skip_gate_init must lie strictly between 0 and 1"),
        ({"mlc_skip_gate_init": 0.0}, "mlc_skip_gate_init must lie strictly between 0 and 1"),
        ({"mlc_skip_gate_init": 0.9, "mlc_skip_gate": False}, "set mlc_skip_gate=True, or drop mlc_skip_gate_init"),
        ({"mlc_skip_gate_init": 0.9, "mlc_method": "mlc_d"}, "set mlc_skip_gate=True, or drop mlc_skip_gate_init"),
    ],
)
def test_skip_gate_init_refuses_a_value_it_cannot_use(tmp_path, settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_args(tmp_path, **settings)


def test_loss_settings_it_would_ignore_are_refused(tmp_path):
    with pytest.raises(ValueError, match="does not take compute_loss_func"):
        MLCTrainer(model=TinyNet(), args=make_args(tmp_path), train_dataset=TRAIN, clean_dataset=CLEAN,
                   compute_loss_func=lambda outputs, labels, num_items_in_batch=None: outputs["logits"].sum())
    with pytest.raises(ValueError, match="label_smoothing_factor=0.1 is not supported .* Set label_smoothing_factor=0"):
        make_args(tmp_path, label_smoothing_factor=0.1)


def test_skip_gate_defaults_per_method(tmp_path):
    assert make_args(tmp_path, mlc_method="mlc").resolved_skip_gate is True
    # EBOMLC: gated under the Trainer's AdamW, the authors' ungated setting under SGD and for the released step.
    assert make_args(tmp_path, mlc_method="ebomlc").resolved_skip_gate is True
    assert make_args(tmp_path, mlc_method="ebomlc", optim="sgd").resolved_skip_gate is False
    assert make_args(tmp_path, mlc_method="ebomlc", mlc_ebomlc_variant="released").resolved_skip_gate is False
    assert make_args(tmp_path, mlc_method="ebomlc", mlc_skip_gate=False).resolved_skip_gate is False
    assert make_args(tmp_path, mlc_method="mlc_d").resolved_skip_gate is False
    assert make_trainer(tmp_path, cls=MLCTrainer).meta_model.skip_gate is True


@pytest.mark.parametrize("passed", ["optimizers", "optimizer_cls_and_kwargs"])
def test_ebomlc_gate_default_follows_an_sgd_passed_to_the_trainer(tmp_path, passed):
    # optim="adamw_torch" in the args, but the main optimizer is SGD: EBOMLC's default gate is off, as with optim="sgd".
    args = make_args(tmp_path, mlc_method="ebomlc")
    model = TinyNet()
    given = {
        "optimizers": {"optimizers": (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), None)},
        "optimizer_cls_and_kwargs": {"optimizer_cls_and_kwargs": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9})},
    }[passed]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ungated EBOMLC under SGD: no warning
        trainer = MetaLabelCorrectionTrainer(model=model, args=args, train_dataset=TRAIN, clean_dataset=CLEAN, **given)
    assert trainer.meta_model.skip_gate is False and trainer.args.resolved_skip_gate is False
    assert trainer.model_card_values()["method_settings"]["skip gate"] is False
    assert args.mlc_skip_gate is None and args.resolved_skip_gate is True  # the caller's args are left as they were
    with pytest.raises(ValueError, match="the skip gate is off for this configuration: set mlc_skip_gate=True"):
        MetaLabelCorrectionTrainer(model=model, args=make_args(tmp_path, mlc_skip_gate_init=0.9), train_dataset=TRAIN,
                                   clean_dataset=CLEAN, **given)  # fmt: skip
    # And the converse: optim="sgd" with an AdamW passed is an adaptive optimizer, gated.
    adamw = (torch.optim.AdamW(model.parameters()), None)
    trainer = MetaLabelCorrectionTrainer(model=model, args=make_args(tmp_path, optim="sgd"), train_dataset=TRAIN,
                                         clean_dataset=CLEAN, optimizers=adamw)  # fmt: skip
    assert trainer.meta_model.skip_gate is True and trainer.model_card_values()["method_settings"]["skip gate"] is True


def test_mlc_d_warns_that_it_is_an_ablation(tmp_path):
    with pytest.warns(UserWarning, match="MLC-D is kept as an ablation: its meta step has no clean-set term"):
        make_trainer(tmp_path, mlc_method="mlc_d")


def test_mlc_without_gate_under_an_adaptive_optimizer_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"adaptive main optimizer \(adamw_torch\w*\) is known to collapse"):
        make_trainer(tmp_path, mlc_method="mlc", mlc_skip_gate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_trainer(tmp_path, mlc_method="mlc", mlc_skip_gate=False, optim="sgd")
        make_trainer(tmp_path, mlc_method="mlc")
        make_trainer(tmp_path, mlc_method="ebomlc", mlc_ebomlc_variant="released", optim="sgd")


def test_ungated_ebomlc_under_an_adaptive_optimizer_warns(tmp_path):
    with pytest.warns(UserWarning, match="EBOMLC without the skip gate"):
        make_trainer(tmp_path, mlc_method="ebomlc", mlc_skip_gate=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_trainer(tmp_path, mlc_method="ebomlc")  # gated by default under AdamW
        make_trainer(tmp_path, mlc_method="ebomlc", mlc_skip_gate=False, optim="sgd")


def test_released_ebomlc_under_an_adaptive_optimizer_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"released EBOMLC step with a non-SGD main optimizer \(adamw_torch\w*\)"):
        make_trainer(tmp_path, mlc_method="ebomlc", mlc_ebomlc_variant="released")


def test_default_lower_loss_weights_are_the_batch_sizes(tmp_path):
    # 8 noisy rows and a clean batch of 6 (3 upper, 3 lower): proportional weights are 8 : 3.
    runs = [make_trainer(tmp_path, mlc_clean_batch_size=6, mlc_lower_loss_weights=w) for w in (None, [8.0, 3.0])]
    other = make_trainer(tmp_path, mlc_clean_batch_size=6, mlc_lower_loss_weights=[1.0, 0.5])
    for trainer in [*runs, other]:
        trainer.train()
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.allclose(a, b) for a, b in zip(runs[0].model.parameters(), other.model.parameters()))


def test_load_best_model_at_end_restores_the_meta_model(tmp_path):
    # greater_is_better on eval_loss makes an early checkpoint the best one.
    args = make_args(
        tmp_path, max_steps=6, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
        load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=True,
    )  # fmt: skip
    torch.manual_seed(0)
    trainer = MetaLabelCorrectionTrainer(
        model=TinyNet(), args=args, train_dataset=TRAIN, eval_dataset=CLEAN, clean_dataset=CLEAN
    )
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None and not best.endswith("checkpoint-6")
    saved = torch.load(os.path.join(best, MLC_STATE_NAME), weights_only=True)["state"]["meta_model"]
    last = torch.load(tmp_path / "checkpoint-6" / MLC_STATE_NAME, weights_only=True)["state"]["meta_model"]
    for name, value in trainer.meta_model.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0)
    assert any(not torch.equal(saved[k], last[k]) for k in saved)


def test_model_card_describes_the_method_and_the_clean_set(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2, mlc_method="mlc")
    trainer.train()
    trainer.create_model_card(model_name="tiny-mlc")
    card = (tmp_path / "README.md").read_text()
    assert "model_name: tiny-mlc" in card and "MLC: a label correction network" in card
    assert "Clean set" in card and "16 examples" in card and "Bilevel steps taken: 2." in card


@pytest.mark.parametrize(
    "cls, settings, shown",
    [
        (EBOMLCTrainer, dict(mlc_rho=0.5, mlc_meta_lr=3e-4, mlc_meta_weight_decay=1e-4, mlc_barrier_scale=0.3),
         {"ρ (mixture)": 0.5, "meta learning rate (Adam)": 3e-4, "meta weight decay": 1e-4, "ξ (barrier scale)": 0.3}),
        (MLCDTrainer, dict(mlc_inner_steps=3, mlc_barrier_eta=0.9, mlc_inner_lr=0.02),
         {"T (inner steps)": 3, "η_b (barrier)": 0.9, "inner step size": 0.02}),
        (MLCTrainer, dict(mlc_inner_lr=0.02, mlc_meta_hidden_dim=64, mlc_skip_gate_init=0.9),
         {"look-ahead step": "a plain gradient step of 0.02", "meta model (label embedding, hidden width)": "128, 64",
          "skip gate init": 0.9}),
    ],
)  # fmt: skip
def test_model_card_shows_the_settings_used_and_its_snippet_reproduces_them(tmp_path, monkeypatch, cls, settings, shown):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLC-D's ablation warning
        trainer = make_trainer(tmp_path, cls=cls, **settings)
    values = trainer.model_card_values()
    assert {name: values["method_settings"].get(name) for name in shown} == shown
    (line,) = [line for line in values["train_snippet"].splitlines() if line.startswith("args = ")]
    namespace = {"MetaLabelCorrectionConfig": MetaLabelCorrectionConfig}
    monkeypatch.chdir(tmp_path)
    exec(line, namespace)  # the card's config, built as a user would
    fields = [name for name in MetaLabelCorrectionConfig.__dataclass_fields__ if name.startswith("mlc_")]
    assert {f: getattr(namespace["args"], f) for f in fields} == {f: getattr(trainer.args, f) for f in fields}


@pytest.mark.parametrize("method", ["ebomlc", "mlc"])
def test_cached_clean_set_equals_reading_every_batch(tmp_path, method):
    # The clean set collated once and indexed per step gives the very batches the general path reads and collates.
    runs = {}
    for mode in ("auto", "off"):
        trainer = make_trainer(tmp_path / mode, mlc_method=method, max_steps=8, mlc_clean_cache=mode)
        trainer.train()
        cached = trainer.side_batch_cache(CLEAN, trainer.mlc_state.clean_sampler, name="clean_dataset", mode=mode)
        assert (cached is not None) == (mode == "auto")
        runs[mode] = [p.detach().clone() for p in [*trainer.model.parameters(), *trainer.meta_model.parameters()]]
    assert all(torch.equal(a, b) for a, b in zip(runs["auto"], runs["off"]))
    # A format transform may draw random numbers: never cached automatically.
    trainer = make_trainer(tmp_path / "transform", mlc_method=method, max_steps=2, clean=CLEAN.with_transform(lambda b: b))
    trainer.train()
    assert trainer.side_batch_cache(trainer.clean_dataset, trainer.mlc_state.clean_sampler, name="clean_dataset", mode="auto") is None


@pytest.mark.parametrize("method", ["mlc", "ebomlc"])
def test_warns_once_when_the_clean_set_is_memorised(tmp_path, method):
    # 16 clean rows in every step's loss: TinyNet fits them within tens of steps, after which the meta model's
    # signal (the clean-batch loss) is all but gone.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = make_trainer(tmp_path, mlc_method=method, max_steps=80, learning_rate=3e-2)
        trainer.train()
    fitted = [str(w.message) for w in caught if "fits the clean set almost exactly" in str(w.message)]
    key = "mlc/clean_loss" if method == "ebomlc" else "mlc/upper_loss"  # the main model's CE on the clean batches
    clean = [e[key] for e in trainer.state.log_history if key in e]
    first = next(i for i, u in enumerate(clean) if u < CLEAN_SET_FITTED_LOSS)
    assert len(fitted) == 1 and f"{key} {clean[first]:.2g} at step {2 * (first + 1)}" in fitted[0]
    assert "put 9" in fitted[0]  # the corrected labels' mass on the given labels, e.g. 98.8 %
    assert "mlc_lower_loss_weights=[1.0, 0.0]" in fitted[0]  # the remedy, named
    # A short run whose clean-batch loss stays above the threshold says nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short = make_trainer(tmp_path, mlc_method="mlc", max_steps=6, learning_rate=3e-2)
        short.train()
    assert min(e["mlc/upper_loss"] for e in short.state.log_history if "mlc/upper_loss" in e) >= CLEAN_SET_FITTED_LOSS
    with pytest.warns(UserWarning, match="fits the clean set almost exactly"):
        make_trainer(tmp_path, mlc_method=method, max_steps=1).log({key: 1e-3})
    with warnings.catch_warnings():  # a NaN clean loss (a diverged model) is not a fitted clean set
        warnings.simplefilter("error")
        make_trainer(tmp_path, mlc_method=method, max_steps=1).log({key: float("nan")})


def test_clean_rows_out_of_the_lower_loss_silence_the_memorised_warning_for_mlc_only(tmp_path):
    # MLC's main update then never sees the clean rows: a low clean-batch loss is generalisation, not memory.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unseen = make_trainer(tmp_path, mlc_method="mlc", max_steps=1, mlc_lower_loss_weights=[1.0, 0.0])
        unseen.log({"mlc/upper_loss": CLEAN_SET_FITTED_LOSS / 10})
    # EBOMLC's main update still descends the mixture upper loss on them.
    seen = make_trainer(tmp_path, mlc_method="ebomlc", max_steps=1, mlc_lower_loss_weights=[1.0, 0.0])
    with pytest.warns(UserWarning, match=r"mlc/clean_loss 0.001 at step 0\b.*mlc_lower_loss_weights=\[1.0, 0.0\] does "
                      r"not keep them out of it \(it does with mlc_method='mlc'\)"):
        seen.log({"mlc/upper_loss": 1.0, "mlc/clean_loss": 1e-3})


def test_ebomlc_clean_set_warning_reads_the_main_models_clean_loss(tmp_path):
    # A main model that does not move (lr 1e-9) and a fast meta model: the mixture upper loss falls to ~0 on the meta
    # model's output alone, while the main model's own clean cross-entropy stays near log 3.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = make_trainer(tmp_path, mlc_method="ebomlc", max_steps=20, learning_rate=1e-9, mlc_meta_lr=3e-3,
                               logging_steps=10, lr_scheduler_type="constant")  # fmt: skip
        trainer.train()
    logs = [e for e in trainer.state.log_history if "mlc/upper_loss" in e]
    assert len(logs) == 2 and all(e["mlc/upper_loss"] < CLEAN_SET_FITTED_LOSS for e in logs)
    assert all(1.0 < e["mlc/clean_loss"] < 1.3 for e in logs)
    assert not [w for w in caught if "fits the clean set" in str(w.message)]


@pytest.mark.parametrize("cls", [MetaLabelCorrectionTrainer, EBOMLCTrainer])
def test_settings_changed_on_trainer_args_after_it_was_built_are_refused(tmp_path, cls):
    # The meta model's optimizer was built with mlc_meta_lr at construction: set later it was ignored (the meta
    # model bit-identical to the default run's) while checkpoints and the card named it.
    trainer = make_trainer(tmp_path, cls=cls, max_steps=2)
    trainer.args.mlc_meta_lr = 0.1
    with pytest.raises(ValueError, match=rf"after {cls.__name__} was built \(mlc_meta_lr 1e-05 -> 0.1\)"):
        trainer.train()
    # A Trainer setting the config refuses for this family: refused as it is at construction, not trained with.
    trainer = make_trainer(tmp_path, cls=cls, max_steps=2)
    trainer.args.gradient_accumulation_steps = 2
    with pytest.raises(ValueError, match="gradient_accumulation_steps=2"):
        trainer.train()
    assert trainer.state.global_step == 0
    trainer.args.gradient_accumulation_steps = 1
    assert trainer.train().global_step == 2
