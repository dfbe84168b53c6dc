"""Meta label correction under two CPU processes (torchrun, gloo): saved and resumed equals uninterrupted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("mlc_distributed_worker.py")


@pytest.fixture(scope="module", params=["ebomlc", "mlc"])
def ranks(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(f"mlc_ddp_{request.param}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    port = {"ebomlc": "29531", "mlc": "29532"}[request.param]
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
             str(WORKER), str(tmp_path), request.param],
            cwd=WORKER.parent, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=600,
        )  # fmt: skip
    assert proc.returncode == 0, log.read_text()[-4000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def test_resumed_under_two_processes_equals_the_uninterrupted_run(ranks):
    for rank in ranks:
        assert rank["full"]["global_step"] == rank["resumed"]["global_step"] == 8
        assert rank["resumed"]["weights"] == rank["full"]["weights"]
        assert rank["resumed"]["meta"] == rank["full"]["meta"]
        # the logs after the checkpoint (steps 6 and 8) come from the same clean batches
        assert rank["resumed"]["logged"][-2:] == rank["full"]["logged"][-2:]


def test_both_processes_hold_the_same_models(ranks):
    rank0, rank1 = ranks
    assert rank0["full"]["weights"] == rank1["full"]["weights"]
    assert rank0["full"]["meta"] == rank1["full"]["meta"]


# MLC only: EBOMLC's inner step is a real optimizer step, not a look-ahead.
@pytest.mark.parametrize("ranks", ["mlc"], indirect=True)
def test_the_mlc_lookahead_is_the_averaged_clipped_step_each_process_takes(ranks):
    for rank in ranks:
        assert len(rank["lookahead_gaps"]) == 8
        assert max(rank["lookahead_gaps"]) < 1e-6
        assert min(rank["lookahead_grad_norms"]) > 0.1  # MAX_GRAD_NORM: every look-ahead was clipped
    assert ranks[0]["lookahead_grad_norms"] == ranks[1]["lookahead_grad_norms"]


@pytest.mark.parametrize("ranks", ["mlc"], indirect=True)
def test_mlc_step_on_two_halves_equals_the_step_on_the_whole_batches(ranks):
    for rank in ranks:
        assert rank["split_step_gap"] < 1e-6
