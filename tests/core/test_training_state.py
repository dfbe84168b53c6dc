"""Extra training state in a checkpoint: shared once, per rank beside it, restored under any process count."""

import logging

import pytest
import torch

from hf_lilaw.core.training_state import TrainingState, load_training_state, save_training_state


class Counter:
    """A family state: a shared scalar and a per-rank position re-derived from it when ranks change."""

    def __init__(self, rank: int):
        self.rank, self.value, self.position = rank, torch.zeros(()), 0

    def state_dict(self):
        return {"shared": {"value": self.value.clone()}, "per_rank": {"position": self.position}}

    def load_state_dict(self, state):
        self.value = state["shared"]["value"]
        self.position = state["per_rank"]["position"] if state["per_rank"] is not None else 1000 + self.rank


def save_from(world_size, folder):
    for rank in range(world_size):
        state = Counter(rank)
        state.value, state.position = torch.tensor(2.5), 10 * (rank + 1)
        save_training_state(state, str(folder), name="demo_state", process_index=rank, world_size=world_size,
                            save_shared=rank == 0)


def test_files_are_shared_once_and_per_rank_beside_it(tmp_path):
    assert isinstance(Counter(0), TrainingState)
    save_from(2, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_state.pt", "demo_state_rank0.pt", "demo_state_rank1.pt"]
    for rank in range(2):
        state = Counter(rank)
        assert load_training_state(state, str(tmp_path), name="demo_state", process_index=rank, world_size=2, what="demo")
        assert (float(state.value), state.position) == (2.5, 10 * (rank + 1))


@pytest.mark.parametrize(("saved", "resumed"), [(2, 1), (1, 2), (2, 3)])
def test_another_process_count_keeps_the_shared_part_and_rederives_the_rest(tmp_path, caplog, saved, resumed):
    save_from(saved, tmp_path)
    with caplog.at_level(logging.WARNING):
        for rank in range(resumed):
            state = Counter(rank)
            load_training_state(state, str(tmp_path), name="demo_state", process_index=rank, world_size=resumed, what="demo")
            assert (float(state.value), state.position) == (2.5, 1000 + rank)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"saved by {saved} process(es) and is resumed by {resumed}" in warnings[0]


def test_missing_state_warns_and_a_damaged_one_names_its_file(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert not load_training_state(Counter(0), str(tmp_path), name="demo_state", process_index=0, world_size=1, what="demo")
    assert "has no demo_state.pt" in caplog.text
    save_from(1, tmp_path)
    (tmp_path / "demo_state_rank0.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="demo_state_rank0.pt"):
        load_training_state(Counter(0), str(tmp_path), name="demo_state", process_index=0, world_size=1, what="demo")


def test_a_state_without_the_split_is_refused(tmp_path):
    class Flat(Counter):
        def state_dict(self):
            return {"value": self.value}

    with pytest.raises(TypeError, match="'shared': ..., 'per_rank'"):
        save_training_state(Flat(0), str(tmp_path), name="x", process_index=0, world_size=1, save_shared=True)


def test_per_rank_files_without_the_shared_one_are_refused(tmp_path):
    # A checkpoint whose shared file was lost (no manifest to tell): the state started fresh with a warning, so a
    # LiLAW run resumed from it reset alpha, beta, delta and went on as another run than the checkpoint's.
    save_from(2, tmp_path)
    (tmp_path / "demo_state.pt").unlink()
    with pytest.raises(ValueError, match=r"has demo_state_rank0.pt but no demo_state.pt"):
        load_training_state(Counter(0), str(tmp_path), name="demo_state", process_index=0, world_size=2, what="demo")
