"""Each plot writes a real, non-blank PNG; rows never scored (NaN) are left out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hf_lilaw.analysis import plots
from hf_lilaw.analysis.plots import plot_data_map, plot_weight_histogram
from hf_lilaw.lilaw.plot import plot_lilaw_parameters

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_real_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > min_bytes
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert min(pixels.shape) > 200
    assert pixels.std() > 5  # something was drawn on the white canvas


def test_plot_lilaw_parameters(tmp_path):
    history = [{"loss": 1.0, "step": 0}]  # entries without the keys are skipped
    for step in range(1, 21):
        history.append(
            {"lilaw/alpha": 10 - 0.1 * step, "lilaw/beta": 2 + 0.05 * step, "lilaw/delta": 6.0, "step": step}
        )
    history.append({"eval_loss": 0.5, "step": 20})
    path = plot_lilaw_parameters(history, tmp_path / "nested" / "params.png")
    assert path == tmp_path / "nested" / "params.png"
    _assert_real_png(path)
    with pytest.raises(ValueError, match="lilaw/alpha"):
        plot_lilaw_parameters([{"loss": 1.0, "step": 1}], tmp_path / "empty.png")


def test_plot_weight_histogram(tmp_path):
    rng = np.random.default_rng(0)
    weights = np.concatenate([rng.normal(1.2, 0.1, 300), rng.normal(1.8, 0.1, 100)])
    is_noisy = np.arange(400) >= 300
    _assert_real_png(plot_weight_histogram(weights, tmp_path / "overlaid.png", is_noisy=is_noisy))
    _assert_real_png(plot_weight_histogram(weights, tmp_path / "plain.png"))
    with pytest.raises(ValueError, match="one per sample"):
        plot_weight_histogram(weights, tmp_path / "bad.png", is_noisy=is_noisy[:10])


def test_plot_data_map(tmp_path):
    rng = np.random.default_rng(0)
    confidence, variability = rng.uniform(0, 1, 200), rng.uniform(0, 0.5, 200)
    path = plot_data_map(
        confidence, variability, tmp_path / "map.png", color=confidence, is_noisy=rng.random(200) < 0.2
    )
    _assert_real_png(path)
    _assert_real_png(plot_data_map(confidence, variability, tmp_path / "plain.png"))
    with pytest.raises(ValueError, match="one value per sample"):
        plot_data_map(confidence, variability[:5], tmp_path / "bad.png")


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plots build, kept instead of saved."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    return figures


def test_plot_weight_histogram_leaves_out_nan_rows(tmp_path, drawn):
    # NaN marks rows never scored (LiLAW's meta split, rows labelled -100).
    weights = np.array([1.2, 1.3, np.nan, 1.6, 1.7])
    is_noisy = np.array([0, 0, 0, 1, 1], dtype=bool)
    plot_weight_histogram(weights, tmp_path / "w.png", is_noisy=is_noisy, bins=5)
    ax = drawn[-1].axes[0]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["clean (n=2)", "noisy (n=2)"]
    assert sum(patch.get_height() for patch in ax.patches) == 4
    assert ax.patches[0].get_x() == pytest.approx(1.2) and ax.patches[-1].get_x() + ax.patches[-1].get_width() == 1.7
    with pytest.raises(ValueError, match="all 2 weights are NaN"):
        plot_weight_histogram([np.nan, np.nan], tmp_path / "none.png")


def test_plot_data_map_colours_ignore_nan_rows(tmp_path, drawn):
    confidence = np.array([0.9, 0.8, np.nan, 0.2, 0.1, 0.5])
    variability = np.array([0.1, 0.1, np.nan, 0.2, 0.3, 0.2])
    color = np.array([0.9, 0.8, np.nan, 0.3, 0.2, np.nan])  # the last row is placed but has no colour
    is_noisy = np.array([0, 0, 0, 1, 1, 0], dtype=bool)
    plot_data_map(confidence, variability, tmp_path / "map.png", color=color, is_noisy=is_noisy)
    clean, noisy = drawn[-1].axes[0].collections
    for points in (clean, noisy):
        assert (points.norm.vmin, points.norm.vmax) == (0.2, 0.9)
    np.testing.assert_array_equal(clean.get_offsets(), [[0.1, 0.9], [0.1, 0.8]])
    np.testing.assert_array_equal(noisy.get_array(), [0.3, 0.2])
    # The highest correctness takes the top of the colour map, the lowest its bottom.
    clean.update_scalarmappable(), noisy.update_scalarmappable()  # as drawing does
    np.testing.assert_allclose(clean.get_facecolors()[0, :3], clean.cmap(1.0)[:3])
    np.testing.assert_allclose(noisy.get_facecolors()[1, :3], noisy.cmap(0.0)[:3])
    with pytest.raises(ValueError, match="none was scored"):
        plot_data_map([np.nan], [0.1], tmp_path / "none.png")
