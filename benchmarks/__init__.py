"""Benchmarks of hf_lilaw: cost (`cost.py`) and accuracy under label noise (`accuracy.py`); see docs/benchmarks.md.

Importing the package sets the environment every benchmark runs in, where the caller has not set it: one
thread (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, read when NumPy's BLAS and torch load) and no Hub access
(``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``, read when huggingface_hub loads). A script therefore imports from
`benchmarks` before NumPy, torch or transformers; `benchmarks.common.offline_environment` then sets torch's
thread count from the command line.
"""

import os

for _key, _value in (("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"), ("HF_HUB_OFFLINE", "1"),
                     ("HF_DATASETS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):  # fmt: skip
    os.environ.setdefault(_key, _value)
