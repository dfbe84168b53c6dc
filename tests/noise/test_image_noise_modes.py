"""Image input noise across PIL modes: transparency, palettes, bit depths, on the noised rows and in far-OOD pools."""

import io

import numpy as np
import pytest
from datasets import Dataset, Features, Image
from PIL import Image as PILImage

from hf_lilaw.noise import add_input_noise


@pytest.fixture(autouse=True)
def _quiet_progress_bars():
    import datasets

    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _half_transparent(mode):
    """8x8, left half opaque grey 200, right half transparent (stored colour black), in ``mode``."""
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (200, 200, 200, 255)
    if mode in ("RGBA", "LA", "PA"):
        return PILImage.fromarray(rgba).convert(mode)
    if mode == "P":
        image = PILImage.fromarray(np.where(rgba[..., 3] > 0, 1, 0).astype(np.uint8), "P")
        image.putpalette([0, 0, 0, 200, 200, 200])
        image.info["transparency"] = 0
        return image
    image = PILImage.fromarray(rgba[..., :3]).convert(mode)  # "L" or "RGB", with a PNG transparent colour
    image.info["transparency"] = 0 if mode == "L" else (0, 0, 0)
    return image


def _png_column(images):
    """An Image column of PNG bytes, as read from files: datasets saves a P image given as PIL as TIFF, which drops
    its transparency (PA, which PNG cannot hold, stays PIL: datasets' TIFF keeps it)."""
    rows = []
    for image in images:
        buf = io.BytesIO()
        if image.mode == "PA":
            rows.append(image)
            continue
        image.save(buf, format="PNG")
        rows.append({"bytes": buf.getvalue(), "path": None})
    return Dataset.from_dict({"image": rows}, features=Features({"image": Image()}))


def _over_white(image):
    """The grey values ``image_transforms`` gives the model: transparent pixels over white."""
    rgba = image.convert("RGBA")
    return np.asarray(PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, (255,) * 4), rgba).convert("L"))


@pytest.mark.parametrize("mode", ["P", "L", "RGB", "PA"])
def test_noised_rows_keep_a_transparent_colour(mode):
    """A palette's or PNG's transparent colour (and PA's alpha) was dropped on the rows hit: their transparent
    background turned black, where the rows not hit show it white."""
    ds = _png_column([_half_transparent(mode)] * 2)
    clean = _over_white(ds[0]["image"])
    assert clean[0].tolist() == [200] * 4 + [255] * 4
    out = add_input_noise(ds, noise_type="ood_covariate", rate=0.5, seed=0, sigma=0.0, label_column=None)
    hit = [image for image, flag in zip(out["image"], out["is_noisy"]) if flag][0]
    np.testing.assert_array_equal(_over_white(hit), clean)
    assert hit.mode == ("LA" if mode == "L" else "RGBA")


@pytest.mark.parametrize("pool_mode", ["RGBA", "LA", "PA", "P", "L", "RGB"])
@pytest.mark.parametrize("set_mode", ["RGB", "L"])
def test_far_ood_puts_transparent_pool_pixels_over_white(set_mode, pool_mode):
    """Transparent pool pixels came out in the colour they store (black here) instead of white, as the pool image
    itself is shown to a model."""
    pool = _png_column([_half_transparent(pool_mode)])
    assert _over_white(pool[0]["image"])[0].tolist() == [200] * 4 + [255] * 4
    ds = Dataset.from_dict({"image": [PILImage.new(set_mode, (8, 8), 100)]}, features=Features({"image": Image()}))
    out = add_input_noise(ds, noise_type="far_ood", rate=1.0, seed=0, pool=pool, label_column=None)
    got = np.asarray(out[0]["image"])
    assert out[0]["image"].mode == set_mode
    np.testing.assert_array_equal(got if set_mode == "L" else got[..., 0], np.tile([200] * 4 + [255] * 4, (8, 1)))


def test_far_ood_puts_transparent_array_pool_pixels_over_white():
    gray_alpha = np.zeros((6, 6, 2), np.float32)
    gray_alpha[:, :3] = (0.4, 1.0)  # left opaque 0.4, right transparent black
    ds = Dataset.from_dict({"image": np.full((1, 6, 6), 0.5, np.float32)})
    out = add_input_noise(ds, noise_type="far_ood", rate=1.0, seed=0, pool=[gray_alpha], label_column=None)
    np.testing.assert_allclose(out.with_format("numpy")["image"][0], np.tile([0.4] * 3 + [1.0] * 3, (6, 1)))


@pytest.mark.parametrize("set_mode", ["RGBA", "LA"])
def test_far_ood_replaces_the_alpha_band_too(set_mode):
    """The row's own alpha was kept: the replacement showed only inside the row's object, whose shape (and so
    its class) a model could still see, with white around it."""
    ds = Dataset.from_dict({"image": [_half_transparent(set_mode)] * 2}, features=Features({"image": Image()}))
    out = add_input_noise(ds, noise_type="far_ood", rate=1.0, seed=0, pool=[np.full((6, 6, 3), 60, np.uint8)],
                          label_column=None)  # fmt: skip
    for image in out["image"]:
        assert image.mode == set_mode
        np.testing.assert_array_equal(_over_white(image), np.full((8, 8), 60))
    fallback = add_input_noise(ds, noise_type="far_ood", rate=1.0, seed=0, label_column=None)
    for image in fallback["image"]:
        pixels = np.asarray(image)
        assert np.all(pixels[..., -1] == 255) and pixels[..., :-1].std() > 50  # opaque uniform noise


@pytest.mark.parametrize("set_mode", ["RGBA", "LA"])
@pytest.mark.parametrize(("noise_type", "setting"), [("crop_shift", {"shift_fraction": 0.25}),
                                                     ("crop_shift", {"shift_fraction": -0.25}),
                                                     ("zoom_shift", {"zoom_factor": 2.0})])  # fmt: skip
def test_geometric_noise_moves_the_alpha_band_with_the_pixels(set_mode, noise_type, setting):
    """The alpha band stayed in place: a shifted object was cut off at its old outline (and the transparent
    colour shifted in showed black), and a zoomed one kept its old size. A model now sees the noise of the image
    it sees: the same noise on the image put over white."""
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, 1:5] = (200, 200, 200, 255)
    rgba[2:6, 2:4, :3] = 90  # a darker square in the object
    image = PILImage.fromarray(rgba).convert(set_mode)
    features = Features({"image": Image()})
    ds = Dataset.from_dict({"image": [image]}, features=features)
    shown = Dataset.from_dict({"image": [PILImage.fromarray(_over_white(image))]}, features=features)
    got = add_input_noise(ds, noise_type=noise_type, rate=1.0, seed=0, label_column=None, **setting)[0]["image"]
    want = add_input_noise(shown, noise_type=noise_type, rate=1.0, seed=0, label_column=None, **setting)[0]["image"]
    assert got.mode == set_mode
    np.testing.assert_array_equal(_over_white(got), np.asarray(want))


@pytest.mark.parametrize("noise_type", ["ood_covariate", "domain_shift"])
def test_pixel_noise_does_not_depend_on_colours_under_full_transparency(noise_type):
    """The colour that transparent pixels store, which nobody sees, set the covariate noise scale (the image's
    maximum) and the cartoon's edges: of two images shown alike, the cartoon turned one object black and left the
    other almost as it was. The noise is now of the image as shown, over white, alpha kept."""
    views, raw = [], []
    for stored in (0, 255):
        rgba = np.full((16, 16, 4), stored, np.uint8)
        rgba[..., 3] = 0
        rgba[4:12, 4:12] = (180, 180, 180, 255)
        rgba[4:12, 4] = (120, 120, 120, 128)  # a half-transparent left edge
        ds = Dataset.from_dict({"image": [PILImage.fromarray(rgba)]}, features=Features({"image": Image()}))
        out = add_input_noise(ds, noise_type=noise_type, rate=1.0, seed=0, sigma=0.2, label_column=None)
        views.append(_over_white(out[0]["image"]).astype(int))
        raw.append(np.asarray(out[0]["image"]))
        np.testing.assert_array_equal(raw[-1][..., 3], rgba[..., 3])
    np.testing.assert_allclose(views[0], views[1], atol=1)
    identity = add_input_noise(ds, noise_type="ood_covariate", rate=1.0, seed=0, sigma=0.0, label_column=None)
    np.testing.assert_array_equal(np.asarray(identity[0]["image"])[4:12, 4:12], rgba[4:12, 4:12])


def test_lab_images_are_not_taken_for_transparent():
    """LAB's band "A" (the a* colour axis) was read as an alpha band: a hit LAB row came back RGBA (opaque), a
    4-band image beside 3-band rows, where every other mode without transparency becomes RGB."""
    rgb = PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    ds = Dataset.from_dict({"image": [rgb.convert("LAB")] * 2}, features=Features({"image": Image()}))
    assert ds[0]["image"].mode == "LAB"
    for noise_type in ("ood_covariate", "zoom_shift"):
        out = add_input_noise(ds, noise_type=noise_type, rate=1.0, seed=0, label_column=None)
        assert [image.mode for image in out["image"]] == ["RGB", "RGB"]
