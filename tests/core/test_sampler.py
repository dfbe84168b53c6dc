import pytest

from hf_lilaw.core.sampler import MetaBatchSampler


def test_batches_cover_the_set_without_replacement_then_reshuffle():
    sampler = MetaBatchSampler(10, 3, seed=0)
    first_pass = [sampler.next_batch() for _ in range(3)]
    flat = [i for batch in first_pass for i in batch]
    assert len(flat) == len(set(flat)) == 9
    second = sampler.next_batch()  # one index left over: a fresh permutation starts
    assert len(second) == 3 and sampler.position == 3


def test_same_seed_same_batches_other_seed_other_batches():
    a, b, c = MetaBatchSampler(50, 8, seed=1), MetaBatchSampler(50, 8, seed=1), MetaBatchSampler(50, 8, seed=2)
    assert [a.next_batch() for _ in range(10)] == [b.next_batch() for _ in range(10)]
    assert a.next_batch() != c.next_batch()


def test_state_round_trip_resumes_the_stream():
    sampler = MetaBatchSampler(20, 6, seed=3)
    for _ in range(5):
        sampler.next_batch()
    state = sampler.state_dict()
    expected = [sampler.next_batch() for _ in range(7)]
    restored = MetaBatchSampler(20, 6, seed=99)
    restored.load_state_dict(state)
    assert [restored.next_batch() for _ in range(7)] == expected


def test_batch_size_is_capped_and_errors_are_clear():
    assert MetaBatchSampler(4, 16, seed=0).next_batch().__len__() == 4
    with pytest.raises(ValueError, match="meta set is empty"):
        MetaBatchSampler(0, 4, seed=0)
    sampler = MetaBatchSampler(20, 6, seed=3)
    with pytest.raises(ValueError, match="same meta_dataset"):
        MetaBatchSampler(21, 6, seed=3).load_state_dict(sampler.state_dict())
