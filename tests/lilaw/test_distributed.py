"""Two CPU processes under torchrun (gloo): α, β, δ identical on every rank, resume equal, close to one process."""

from pathlib import Path

import numpy as np
import pytest

from _distributed import two_processes_and_one

WORKER = Path(__file__).with_name("distributed_worker.py")
INITIAL = {"alpha": 10.0, "beta": 2.0, "delta": 6.0}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return two_processes_and_one(WORKER, tmp_path_factory.mktemp("ddp"))


def test_scalars_and_weights_are_bit_identical_across_ranks(results):
    (rank0, rank1), _ = results
    for run_name in ("full", "resumed"):
        assert rank0[run_name]["params"] == rank1[run_name]["params"]
        assert rank0[run_name]["weights"] == rank1[run_name]["weights"]
        assert rank0[run_name]["meta_steps"] == rank1[run_name]["meta_steps"] == 24 - 2 - 1
    # logged mean weights are reduced over both processes, so both ranks log the same numbers
    assert rank0["full"]["logged_w"] == rank1["full"]["logged_w"]


def test_training_dynamics_are_merged_across_processes(results):
    (rank0, rank1), _ = results
    dynamics = np.array(rank0["dynamics_prob_label"])
    assert dynamics.shape == (2, 192)  # 2 epochs, every training sample
    assert not np.isnan(dynamics).any()  # each rank saw half of each epoch; the merge has them all
    np.testing.assert_array_equal(dynamics, np.array(rank1["dynamics_prob_label"]))


def test_checkpoint_and_resume_under_two_processes(results):
    (rank0, _), _ = results
    assert {"lilaw_state.pt", "lilaw_state_rank0.pt", "lilaw_state_rank1.pt"} <= set(rank0["files"])
    assert rank0["resumed"]["params"] == rank0["full"]["params"]
    assert rank0["resumed"]["weights"] == rank0["full"]["weights"]


def test_close_to_one_process_with_the_same_global_batch(results):
    (rank0, _), single = results
    assert single["full"]["global_step"] == rank0["full"]["global_step"] == 24
    for name, start in INITIAL.items():
        moved_ddp = rank0["full"]["params"][name] - start
        moved_one = single["full"]["params"][name] - start
        # Same direction, similar size; the two runs draw different meta batches, so not equal.
        assert moved_ddp * moved_one > 0
        assert moved_ddp == pytest.approx(moved_one, rel=0.15)
