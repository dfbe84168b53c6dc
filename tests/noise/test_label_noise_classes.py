import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features

from hf_lilaw.noise import add_label_noise, noisy_labels, realised_noise_rate


def test_noise_matrix_says_when_cleanlabs_rounding_drops_the_noise():
    """cleanlab rounds down each class's count of rows sent to each other class: 10 classes of 100 rows at rate 0.2
    flipped 16.3 % of the rows, inside add_label_noise's tolerance, so nothing said the noise was a fifth short;
    100 classes of 10 rows flipped none at all."""
    pytest.importorskip("cleanlab")
    y = np.repeat(np.arange(10), 100)
    with pytest.warns(UserWarning, match=r"flipped a mean per-class share of 0\.1630 instead of 0\.2000: cleanlab"):
        out = noisy_labels(y, noise_type="noise_matrix", rate=0.2, seed=0, num_classes=10)
    assert (out != y).mean() == pytest.approx(0.163)
    data = Dataset.from_dict({"label": y}, features=Features({"label": ClassLabel(num_classes=10)}))
    with pytest.warns(UserWarning, match="100 rows loses"):
        assert realised_noise_rate(add_label_noise(data, noise_type="noise_matrix", rate=0.2, seed=0)) == 0.163
    many = np.repeat(np.arange(100), 10)
    with pytest.warns(UserWarning, match=r"share of 0\.0000 instead of 0\.2000"):
        assert (noisy_labels(many, noise_type="noise_matrix", rate=0.2, seed=0, num_classes=100) == many).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # where rounding costs little (0.392 for 0.4), nothing is said
        out = noisy_labels(np.arange(600) % 4, noise_type="noise_matrix", rate=0.4, seed=0, num_classes=4)
    assert (out != np.arange(600) % 4).mean() == pytest.approx(0.392, abs=1e-3)


def test_noise_matrix_warning_points_at_the_callers_line():
    """The rounding warning pointed three frames up from where it was raised: at the user's line when called
    through noisy_labels, but at hf_lilaw/noise/dataset.py when called through add_label_noise."""
    pytest.importorskip("cleanlab")
    y = np.repeat(np.arange(10), 100)
    with pytest.warns(UserWarning, match="instead of 0.2000") as caught:
        noisy_labels(y, noise_type="noise_matrix", rate=0.2, seed=0, num_classes=10)
    assert [w.filename for w in caught] == [__file__]
    data = Dataset.from_dict({"label": y}, features=Features({"label": ClassLabel(num_classes=10)}))
    with pytest.warns(UserWarning, match="instead of 0.2000") as caught:
        add_label_noise(data, noise_type="noise_matrix", rate=0.2, seed=0)
    assert [w.filename for w in caught if "instead of" in str(w.message)] == [__file__]


def test_noise_matrix_leaves_the_warning_filters_as_they_were():
    """Importing cleanlab added an 'ignore every Warning' filter: after the first noise_matrix call no warning of
    any library reached the user, this module's own (a guessed num_classes, the rounding above) included."""
    pytest.importorskip("cleanlab")
    import hf_lilaw

    code = (
        "import warnings, numpy as np\n"
        "from hf_lilaw.noise import noisy_labels\n"
        "noisy_labels(np.repeat(np.arange(10), 100), noise_type='noise_matrix', rate=0.2, seed=0)\n"
        "warnings.warn('still heard')\n"
    )
    root = os.path.dirname(os.path.dirname(hf_lilaw.__file__))
    env = {**os.environ, "PYTHONPATH": root, "PYTHONWARNINGS": ""}
    stderr = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stderr
    assert "K = max(label) + 1 = 10 is a guess" in stderr and "instead of 0.2000" in stderr
    assert "UserWarning: still heard" in stderr
