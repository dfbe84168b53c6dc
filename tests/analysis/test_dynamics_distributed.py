"""Training dynamics under two CPU processes (torchrun, gloo) against one process with the same global batch."""

from pathlib import Path

import numpy as np
import pytest

from _distributed import two_processes_and_one

WORKER = Path(__file__).with_name("dynamics_distributed_worker.py")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return two_processes_and_one(WORKER, tmp_path_factory.mktemp("ddp_dynamics"), batch=4)


def test_padded_rows_keep_their_first_visit(results):
    # 22 rows, global batch 8: the sampler pads the last step with the epoch's first rows, which the merge used to
    # average with their first visit (0.34 off one process's value for such a row).
    (rank0, rank1), one = results
    two_epochs = np.array(rank0["full"]["prob_label"])
    assert two_epochs.shape == (2, 22) and not np.isnan(two_epochs).any()
    np.testing.assert_array_equal(two_epochs, rank1["full"]["prob_label"])
    # Epoch 0 is recorded before the padded step trains, so it is one process's record; epoch 1 differs by what the
    # padded rows added to that step's gradient (plain Trainer's distributed training).
    np.testing.assert_allclose(two_epochs[0], np.array(one["full"]["prob_label"])[0], atol=1e-5)
    np.testing.assert_allclose(rank0["full"]["loss"][0], one["full"]["loss"][0], rtol=1e-5)


def test_the_file_is_the_merged_record(results):
    (rank0, _), _ = results
    for run in ("full", "no_save"):
        assert rank0[run]["files"] == ["training_dynamics.npz"]  # no process left a temporary file
        np.testing.assert_array_equal(rank0[run]["saved_prob_label"], rank0[run]["prob_label"])
    np.testing.assert_array_equal(rank0["no_save"]["prob_label"], rank0["full"]["prob_label"])


def test_a_run_killed_after_a_mid_epoch_checkpoint_resumes_to_the_uninterrupted_record(results):
    (rank0, rank1), _ = results
    for rank in (rank0, rank1):
        np.testing.assert_array_equal(rank["resumed"]["prob_label"], rank0["full"]["prob_label"])
        np.testing.assert_array_equal(rank["resumed"]["saved_prob_label"], rank0["full"]["prob_label"])
