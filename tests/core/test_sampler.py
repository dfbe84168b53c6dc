import datasets
import pytest
import torch

from hf_lilaw.core.rng import side_set_rng
from hf_lilaw.core.sampler import IndexBatchSampler, StreamedBatches


def reference_batches(num_samples, batch_size, seed, count):
    """The stream as LiLAW has always drawn it: a torch permutation per pass, leftovers skipped."""
    generator = torch.Generator().manual_seed(seed)
    batches, permutation, position = [], torch.randperm(num_samples, generator=generator), 0
    for _ in range(count):
        if position + batch_size > num_samples:
            permutation, position = torch.randperm(num_samples, generator=generator), 0
        batches.append(permutation[position : position + batch_size].tolist())
        position += batch_size
    return batches


def test_batches_cover_the_set_without_replacement_then_reshuffle():
    sampler = IndexBatchSampler(10, 3, seed=0)
    first_pass = [sampler.next_batch() for _ in range(3)]
    flat = [i for batch in first_pass for i in batch]
    assert len(flat) == len(set(flat)) == 9
    assert len(next(sampler)) == 3 and sampler.batches_drawn == 4  # one index left over: a fresh pass starts


def test_stream_is_lilaws_and_depends_on_the_seed_only():
    a, c = IndexBatchSampler(50, 8, seed=1), IndexBatchSampler(50, 8, seed=2)
    assert [a.next_batch() for _ in range(20)] == reference_batches(50, 8, 1, 20)
    assert c.next_batch() != reference_batches(50, 8, 1, 1)[0]


@pytest.mark.parametrize("drawn", [0, 3, 5, 17])
def test_state_round_trip_and_fast_forward_resume_the_stream(drawn):
    expected = reference_batches(20, 6, 3, drawn + 7)[drawn:]
    sampler = IndexBatchSampler(20, 6, seed=3)
    for _ in range(drawn):
        sampler.next_batch()
    assert sampler.state_dict() == {"num_samples": 20, "batch_size": 6, "seed": 3, "batches_drawn": drawn}
    restored = IndexBatchSampler(20, 6, seed=3)
    restored.load_state_dict(sampler.state_dict())
    assert [restored.next_batch() for _ in range(7)] == expected
    rewound = IndexBatchSampler(20, 6, seed=3)
    for _ in range(30):
        rewound.next_batch()
    rewound.fast_forward(drawn)  # backwards too: the generator is replayed
    assert [rewound.next_batch() for _ in range(7)] == expected


def test_batch_size_is_capped_or_refused_and_errors_are_clear():
    assert len(IndexBatchSampler(4, 16, seed=0).next_batch()) == 4
    with pytest.raises(ValueError, match="batch size .16. is larger than the clean_dataset .4 examples"):
        IndexBatchSampler(4, 16, seed=0, strict=True, name="clean_dataset")
    with pytest.raises(ValueError, match="meta_dataset is empty"):
        IndexBatchSampler(0, 4, seed=0, name="meta_dataset")
    with pytest.raises(ValueError, match=r"does not match this run .*'num_samples': \(20, 21\)"):
        IndexBatchSampler(21, 6, seed=3).load_state_dict(IndexBatchSampler(20, 6, seed=3).state_dict())


def test_streamed_batches_straddle_passes_and_fast_forward_replays_them():
    stream = datasets.Dataset.from_dict({"i": list(range(10))}).to_iterable_dataset(num_shards=1)
    sampler = StreamedBatches(stream, 4, seed=0)
    batches = [[row["i"] for row in sampler.next_batch()] for _ in range(6)]
    assert sorted(batches[0] + batches[1] + batches[2][:2]) == list(range(10))  # first pass: 10 rows
    assert sampler.state_dict() == {
        "batch_size": 4, "seed": 0, "buffer_size": 1000, "batches_drawn": 6, "epoch": 2, "consumed": 4
    }
    again = StreamedBatches(stream, 4, seed=0)
    again.fast_forward(3)
    assert [[row["i"] for row in again.next_batch()] for _ in range(3)] == batches[3:]
    resumed = StreamedBatches(stream, 4, seed=0)
    state = dict(sampler.state_dict(), batches_drawn=3, epoch=1, consumed=2)
    resumed.load_state_dict(state)
    assert [[row["i"] for row in resumed.next_batch()] for _ in range(3)] == batches[3:]


def randomness(draw):
    return side_set_rng(0, process_index=0, name="meta_dataset", draw=draw)


class NoisyStream:
    """A stream without shuffle whose rows get noise as they are read (a lazy random map, one row at a time)."""

    def __iter__(self):
        for i in range(10):
            yield {"i": i, "noise": torch.rand(()).item()}


def noisy_streams():
    mapped = datasets.Dataset.from_dict({"i": list(range(10))}).to_iterable_dataset(num_shards=1)
    return {"datasets-map": mapped.map(lambda row: {"noise": torch.rand(()).item()}), "lazy-iterable": NoisyStream()}


@pytest.mark.parametrize("kind", ["datasets-map", "lazy-iterable"])
@pytest.mark.parametrize("batch_size", [4, 5], ids=["straddling", "even"])
def test_a_resumed_stream_reads_every_draw_under_that_draws_randomness(batch_size, kind):
    """A random map runs as rows are read: in the uninterrupted run each row gets the noise of the draw that read it
    (a `datasets` stream maps a whole pass into its shuffle buffer when the pass opens). A resume, from a saved
    state or fast-forwarded, replays those reads under the same draws: the uninterrupted run's examples follow, at
    every position, within a pass and across pass ends."""
    stream = noisy_streams()[kind]
    full = StreamedBatches(stream, batch_size, seed=0)
    batches, states = [], []
    for draw in range(8):
        states.append(full.state_dict())
        with randomness(draw):
            batches.append(full.next_batch())
    assert states[-1]["epoch"] >= 2
    for drawn, state in enumerate(states):
        loaded, forwarded = StreamedBatches(stream, batch_size, seed=0), StreamedBatches(stream, batch_size, seed=0)
        loaded.load_state_dict(state, randomness=randomness)
        forwarded.fast_forward(drawn, randomness=randomness)
        for resumed in (loaded, forwarded):
            assert resumed.state_dict() == state
            rest = []
            for draw in range(drawn, 8):
                with randomness(draw):
                    rest.append(resumed.next_batch())
            assert rest == batches[drawn:], (drawn, resumed is loaded)


def test_a_stream_shorter_than_its_batch_is_refused_before_a_batch_repeats_rows():
    stream = datasets.Dataset.from_dict({"i": list(range(5))}).to_iterable_dataset(num_shards=1)
    sampler = StreamedBatches(stream, 8, seed=0, name="clean_dataset", setting="mlc_clean_batch_size")
    with pytest.raises(
        ValueError,
        match=r"^The streamed clean_dataset has 5 examples, fewer than mlc_clean_batch_size \(8\): a batch would hold "
        r"some examples twice\. Set mlc_clean_batch_size to at most 5, or pass a larger clean_dataset\.$",
    ):
        sampler.next_batch()
    assert sampler.batches_drawn == 0
    exact = StreamedBatches(stream, 5, seed=0)  # a batch of the whole stream is fine
    assert [sorted(row["i"] for row in exact.next_batch()) for _ in range(3)] == [list(range(5))] * 3


def test_an_iterator_is_refused_before_it_is_read():
    """A generator is read once: the probe took its first examples and the stream's second pass found nothing,
    failing mid-run with "yielded no examples". It is refused when the stream is built, nothing read."""
    rows = ({"i": i} for i in range(6))
    with pytest.raises(ValueError, match=r"^The meta_dataset is an iterator \(generator\), which can be read only once"):
        StreamedBatches(rows, 2, seed=0, name="meta_dataset")
    assert next(rows) == {"i": 0}
    with pytest.raises(ValueError, match=r"^The clean_dataset is an iterator \(map\)"):
        StreamedBatches(map(dict, [{"i": 0}] * 4), 2, seed=0, name="clean_dataset")

    class Restarting(torch.utils.data.IterableDataset):  # its own iterator, restarted by __iter__
        def __iter__(self):
            self.rows = iter([{"i": i} for i in range(6)])
            return self

        def __next__(self):
            return next(self.rows)

    for again in ([{"i": i} for i in range(6)], Restarting()):  # read again at every pass
        sampler = StreamedBatches(again, 4, seed=0)
        assert [[row["i"] for row in sampler.next_batch()] for _ in range(3)] == [[0, 1, 2, 3], [4, 5, 0, 1], [2, 3, 4, 5]]


def test_streamed_resume_refuses_another_batch_size_or_seed():
    """The saved position counts batches of the saved size: resumed under another batch size (or seed) the stream
    would silently draw other batches than the uninterrupted run, so the checkpoint is refused, as for index batches."""
    stream = datasets.Dataset.from_dict({"i": list(range(10))}).to_iterable_dataset(num_shards=1)
    saved = StreamedBatches(stream, 8, seed=0, name="meta_dataset")
    saved.next_batch()
    state = saved.state_dict()
    resumed = StreamedBatches(stream, 4, seed=0, name="meta_dataset")
    with pytest.raises(
        ValueError,
        match=r"streamed meta_dataset sampler does not match this run \(saved, current\): \{'batch_size': \(8, 4\)\}\. "
        r"Resume with the streamed meta_dataset, the batch size and seed the checkpoint was saved with",
    ):
        resumed.load_state_dict(state)
    with pytest.raises(ValueError, match=r"does not match this run .*'seed': \(0, 1\)"):
        StreamedBatches(stream, 8, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match=r"does not match this run .*'buffer_size': \(1000, 2\)"):
        StreamedBatches(stream, 8, seed=0, buffer_size=2).load_state_dict(state)
    same = StreamedBatches(stream, 8, seed=0)
    same.load_state_dict(state)  # the same settings still resume, where the uninterrupted stream goes on
    assert same.next_batch() == saved.next_batch()
    older = {k: v for k, v in state.items() if k != "buffer_size"}  # saved before the buffer size was recorded
    StreamedBatches(stream, 8, seed=0).load_state_dict(older)
    with pytest.raises(ValueError, match=r"'buffer_size': \(1000, 2\)"):
        StreamedBatches(stream, 8, seed=0, buffer_size=2).load_state_dict(older)


@pytest.mark.parametrize("streamed", [False, True])
def test_refused_resume_names_the_setting_to_keep(streamed):
    stream = datasets.Dataset.from_dict({"i": list(range(20))}).to_iterable_dataset(num_shards=1)

    def sampler(batch_size):
        if streamed:
            return StreamedBatches(stream, batch_size, seed=0, name="meta_dataset", setting="lilaw_meta_batch_size")
        return IndexBatchSampler(20, batch_size, seed=0, name="meta_dataset", setting="lilaw_meta_batch_size")

    with pytest.raises(ValueError, match=r"'batch_size': \(8, 4\)\}\. Resume with the .*lilaw_meta_batch_size and seed"):
        sampler(4).load_state_dict(sampler(8).state_dict())
