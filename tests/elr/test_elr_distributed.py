"""Two CPU processes under torchrun (gloo): ELR's targets identical on every rank, resume equal, and equal to one
process with the same global batch."""

from pathlib import Path

import numpy as np
import pytest

from _distributed import two_processes_and_one

WORKER = Path(__file__).with_name("elr_distributed_worker.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return two_processes_and_one(WORKER, tmp_path_factory.mktemp("elr_ddp"))


def test_targets_and_weights_are_bit_identical_across_ranks(results):
    (rank0, rank1), _ = results
    for run_name in ("full", "resumed", "uneven"):
        assert rank0[run_name]["targets"] == rank1[run_name]["targets"], run_name
        assert rank0[run_name]["weights"] == rank1[run_name]["weights"], run_name
    # logged means are reduced over both processes, so both ranks log the same numbers
    assert rank0["full"]["logged"] == rank1["full"]["logged"]


def test_every_process_sees_every_update(results):
    (rank0, _), _ = results
    targets = np.array(rank0["full"]["targets"])
    assert targets.shape == (192, 3)
    # each rank trained on half of each epoch; the gathered updates gave every sample its two visits
    np.testing.assert_allclose(targets.sum(1), 1 - 0.7**2, rtol=0, atol=1e-6)
    uneven = np.array(rank0["uneven"]["targets"])
    assert uneven.shape == (190, 3) and (uneven.sum(1) > 0.29).all()  # one epoch: every sample at least once


def test_checkpoint_and_resume_under_two_processes(results):
    (rank0, _), _ = results
    assert {"elr_state.pt", "elr_state_rank0.pt", "elr_state_rank1.pt"} <= set(rank0["files"])
    assert rank0["resumed"]["targets"] == rank0["full"]["targets"]
    assert rank0["resumed"]["weights"] == rank0["full"]["weights"]


def test_equal_to_one_process_with_the_same_global_batch(results):
    (rank0, _), single = results
    assert single["full"]["global_step"] == rank0["full"]["global_step"] == 24
    # The two processes' batches of 8 are the single process's batch of 16 split in two; only the order of
    # floating-point sums differs.
    np.testing.assert_allclose(rank0["full"]["targets"], single["full"]["targets"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(rank0["full"]["weights"], single["full"]["weights"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(rank0["full"]["logged"], single["full"]["logged"], rtol=1e-4)
