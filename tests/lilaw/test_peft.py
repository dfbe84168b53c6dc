"""LiLAW with a LoRA-wrapped transformers image model: train, checkpoint, resume equal, reload the adapter."""

import os

import datasets
import numpy as np
import pytest
import torch

from conftest import StopAfter
from hf_lilaw import LiLAWConfig, LiLAWTrainer

peft = pytest.importorskip("peft")  # the optional extra hf_lilaw[peft]

from transformers import ViTConfig, ViTForImageClassification  # noqa: E402

NUM_CLASSES, IMAGE_SIZE, MAX_STEPS = 3, 16, 8


def base_model() -> ViTForImageClassification:
    """A tiny random ViT; the same seed gives the same base weights, as a Hub checkpoint would."""
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=IMAGE_SIZE, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, num_labels=NUM_CLASSES,
    )
    return ViTForImageClassification(config)


def lora_model():
    # transformers 5 names the ViT attention projections q_proj/k_proj/v_proj (4.x: query/key/value).
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"])
    return peft.get_peft_model(base_model(), config)


def images(n: int, *, seed: int) -> datasets.Dataset:
    """Class-coloured noise images, a quarter of the labels flipped."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    pixels = rng.normal(scale=0.5, size=(n, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    pixels[np.arange(n), labels] += 1.0  # the class brightens one colour channel
    noisy = np.where(rng.random(n) < 0.25, (labels + 1) % NUM_CLASSES, labels)
    return datasets.Dataset.from_dict({"pixel_values": pixels, "label": noisy}).with_format("torch")


@pytest.fixture(scope="module")
def data():
    return images(64, seed=0), images(16, seed=1)


def make(output_dir, data, callbacks=None) -> LiLAWTrainer:
    args = LiLAWConfig(
        output_dir=str(output_dir), per_device_train_batch_size=8, max_steps=MAX_STEPS, learning_rate=0.01,
        lilaw_warmup_steps=2, lilaw_lr=0.5, save_strategy="steps", save_steps=3, logging_steps=MAX_STEPS,
        report_to=[], disable_tqdm=True, seed=0, use_cpu=True,
    )
    train, meta = data
    return LiLAWTrainer(model=lora_model(), args=args, train_dataset=train, meta_dataset=meta, callbacks=callbacks)


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def test_lora_trains_checkpoints_resumes_and_reloads(tmp_path, data):
    full = make(tmp_path / "full", data)
    assert full.model.get_nb_trainable_parameters()[0] < sum(p.numel() for p in full.model.parameters()) / 2
    frozen_before = {n: p.detach().clone() for n, p in full.model.named_parameters() if not p.requires_grad}
    full.train()
    assert full.meta_steps == MAX_STEPS - 2 - 1
    assert full.lilaw_parameters() != {"alpha": 10.0, "beta": 2.0, "delta": 6.0}
    for name, value in full.model.named_parameters():  # LoRA trains only the adapter and the classifier
        if not value.requires_grad:
            assert torch.equal(value, frozen_before[name]), name

    checkpoint = tmp_path / "resumed" / "checkpoint-6"
    make(tmp_path / "resumed", data, callbacks=[StopAfter(6)]).train()
    files = set(os.listdir(checkpoint))
    assert {"adapter_model.safetensors", "adapter_config.json", "trainer_state.json"} <= files
    assert any(name.startswith("lilaw_state") for name in files), files
    assert "model.safetensors" not in files  # the frozen base is not copied into each checkpoint

    resumed = make(tmp_path / "resumed", data)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.meta_steps == full.meta_steps
    assert resumed.lilaw_parameters() == full.lilaw_parameters()
    resumed_state = trainable_state(resumed.model)
    for name, value in trainable_state(full.model).items():
        torch.testing.assert_close(resumed_state[name], value, rtol=0, atol=0, msg=name)

    full.save_model(str(tmp_path / "adapter"))
    reloaded = peft.PeftModel.from_pretrained(base_model(), str(tmp_path / "adapter")).eval()
    pixels = data[0]["pixel_values"][:16]
    full.model.eval()
    with torch.no_grad():
        expected = full.model(pixel_values=pixels).logits
        torch.testing.assert_close(reloaded(pixel_values=pixels).logits, expected, rtol=1e-6, atol=1e-6)
        assert not torch.allclose(base_model().eval()(pixel_values=pixels).logits, expected)  # the adapter matters
