"""Each plot writes a real, non-blank PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

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
