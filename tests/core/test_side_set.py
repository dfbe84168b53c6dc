"""`SideSet`: one object per side set (LiLAW's meta set, MLC's clean set) that checks it, draws its batches with its
own randomness, caches it, probes it and keeps its stream position in checkpoints; the batches are the ones the
(dataset, sampler, name) helpers it replaced drew (pinned below from them)."""

import copy

import datasets
import pytest
import torch
from transformers import TrainingArguments

from hf_lilaw import BaseTrainer, LiLAWConfig, LiLAWTrainer
from hf_lilaw.core import SideSet
from hf_lilaw.core.checkpoint import load_state_file
from hf_lilaw.core.rng import PROBE_DRAW

from conftest import TinyNet, blobs

META = blobs(48, seed=1)
# Drawn by BaseTrainer.next_side_batch before SideSet existed: batch_size 8, seed 0, run seed 0, one process.
FIRST_INDICES = [[44, 22, 29, 18, 23, 20, 19, 41], [25, 39, 4, 2, 36, 32, 1, 13], [40, 10, 15, 33, 26, 3, 31, 27]]
FIRST_LABELS = [[2, 2, 1, 0, 2, 2, 0, 2], [0, 0, 0, 2, 0, 2, 2, 2], [0, 2, 2, 0, 2, 2, 1, 2]]
# The first two inputs of each batch's first row when a transform adds torch.rand noise, drawn as set "aug".
AUGMENTED_X = [[-1.64844, 2.056093], [-2.360462, 0.520017], [-1.663692, 1.581908]]


def trainer(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, seed=0)
    return BaseTrainer(model=TinyNet(), args=args, train_dataset=blobs(96))


def side_set(owner, dataset=META, **overrides):
    values = dict(name="meta_dataset", batch_size=8, seed=0)
    values.update(overrides)
    return owner.register_side_set(SideSet(dataset, **values))


def add_noise(batch):
    batch["x"] = [torch.tensor(v) + torch.rand(len(v)) for v in batch["x"]]
    return batch


def test_it_draws_the_batches_the_helpers_drew(tmp_path):
    side = side_set(trainer(tmp_path))
    sampler = copy.deepcopy(side.sampler)
    assert [sampler.next_batch() for _ in range(3)] == FIRST_INDICES
    labels = [side.next_batch()[1].tolist() for _ in range(3)]
    assert labels == FIRST_LABELS == [[META["label"][i] for i in batch] for batch in FIRST_INDICES]
    assert side.batches_drawn == 3 and side.state_dict() == {"num_samples": 48, "batch_size": 8, "seed": 0,
                                                              "batches_drawn": 3}  # fmt: skip


def test_a_random_transform_draws_from_the_sets_own_randomness(tmp_path):
    side = side_set(trainer(tmp_path), META.with_transform(add_noise), name="aug")
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    xs = [[round(v, 6) for v in side.next_batch()[0]["x"][0, :2].tolist()] for _ in range(3)]
    assert xs == AUGMENTED_X
    assert torch.equal(torch.random.get_rng_state(), before)  # the training data's stream did not move


@pytest.mark.parametrize("cache", ["auto", "off"])
def test_the_cached_and_the_collated_batches_are_equal(tmp_path, cache):
    owner = trainer(tmp_path)
    side = side_set(owner, cache=cache)
    assert (side.batch_cache() is not None) == (cache == "auto")
    reference = side_set(owner, name="reference", cache="off")
    for _ in range(8):  # more than one pass over the set
        (inputs, labels), (expected_inputs, expected_labels) = side.next_batch(), reference.next_batch()
        assert torch.equal(labels, expected_labels) and torch.equal(inputs["x"], expected_inputs["x"])


def test_its_state_round_trips_and_a_resumed_set_continues_exactly(tmp_path):
    owner = trainer(tmp_path)
    data = META.with_transform(add_noise)
    full = side_set(owner, data, name="aug")
    for _ in range(3):
        full.next_batch()
    state = copy.deepcopy(full.state_dict())
    continued = [full.next_batch() for _ in range(4)]

    for saved in (state, None):  # the process's own state, or none (resumed under another number of processes)
        resumed = side_set(trainer(tmp_path), data, name="aug")
        resumed.load_state_dict(saved, batches_drawn=3)
        assert resumed.state_dict() == state
        for inputs, labels in continued:
            got_inputs, got_labels = resumed.next_batch()
            assert torch.equal(got_labels, labels) and torch.equal(got_inputs["x"], inputs["x"])
        assert resumed.batches_drawn == 7


def test_another_sets_state_is_refused(tmp_path):
    side = side_set(trainer(tmp_path))
    with pytest.raises(ValueError, match=r"meta_dataset sampler does not match this run .*'seed': \(1, 0\)"):
        side.load_state_dict({"num_samples": 48, "batch_size": 8, "seed": 1, "batches_drawn": 2}, batches_drawn=2)


def test_the_probe_reads_the_first_rows_outside_the_stream(tmp_path):
    side = side_set(trainer(tmp_path))
    seen = []
    inputs, labels = side.probe_batch(inspect=seen.append)
    assert labels.tolist() == META["label"][:2] and len(seen[0]) == 2
    assert torch.equal(inputs["x"], torch.tensor(META["x"][:2]))
    assert side.batches_drawn == 0 and PROBE_DRAW == -1


def test_lilaw_saves_the_meta_sets_position_as_before_and_a_resume_continues_it(tmp_path):
    # The per-process file keeps the layout of checkpoints written before SideSet: {"sampler": <sampler state>}.
    def run():
        torch.manual_seed(0)
        args = LiLAWConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, lilaw_meta_batch_size=8, seed=0,
                           per_device_train_batch_size=16, max_steps=5, save_steps=2, lilaw_warmup_steps=0,
                           disable_tqdm=True)  # fmt: skip
        return LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(96), meta_dataset=META)

    full = run()
    assert full.side_sets == {"meta_dataset": full.meta_set} and full.lilaw_state.sampler is full.meta_set.sampler
    full.train()
    checkpoint = tmp_path / "checkpoint-2"
    assert load_state_file(checkpoint / "lilaw_state_rank0.pt", what="x") == {
        "world_size": 1, "rank": 0, "state": {"sampler": {"num_samples": 48, "batch_size": 8, "seed": 0, "batches_drawn": 1}}
    }
    assert load_state_file(checkpoint / "lilaw_state.pt", what="x")["state"]["meta_steps"] == 1

    resumed = run()
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.meta_set.state_dict() == full.meta_set.state_dict() and full.meta_set.batches_drawn == 4
    assert resumed.lilaw_parameters() == full.lilaw_parameters()


@pytest.mark.parametrize("streamed", [False, True], ids=["map-style", "streamed"])
def test_a_resume_under_another_meta_batch_size_is_refused(tmp_path, streamed):
    """The saved position counts meta batches of the saved size: resumed under another size (a streamed meta set
    was accepted) the run would silently draw other batches than the uninterrupted one. The checkpoint's method
    settings refuse it first (the sampler's own check, for checkpoints without them, is in test_sampler.py)."""
    def run(meta_batch_size, max_steps):
        torch.manual_seed(0)
        args = LiLAWConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, lilaw_meta_batch_size=meta_batch_size,
                           seed=0, per_device_train_batch_size=16, max_steps=max_steps, save_steps=2,
                           lilaw_warmup_steps=0, disable_tqdm=True)  # fmt: skip
        meta = META.to_iterable_dataset() if streamed else META
        return LiLAWTrainer(model=TinyNet(), args=args, train_dataset=blobs(96), meta_dataset=meta)

    run(8, 2).train()
    resumed = run(4, 4)
    with pytest.raises(
        ValueError,
        match=r"was saved with other method settings than this run's \(lilaw_meta_batch_size: saved 8, now 4\)",
    ):
        resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert resumed.state.global_step == 0


@pytest.mark.parametrize(
    ("dataset", "options", "message"),
    [
        (META.map(lambda row: {"label": -100}), {}, r"Every label of meta_dataset is -100 \(ignored\)"),
        (META.rename_column("label", "target"), {}, r"meta_dataset has no label column .* Rename the column"),
        (META.select(range(4)), {"strict": True, "setting": "mlc_clean_batch_size"},
         r"mlc_clean_batch_size \(8\) is larger than the meta_dataset \(4 examples\): pass a smaller batch size"),
        (META.select([]), {}, r"The meta_dataset is empty; pass a non-empty meta_dataset\."),
        (META, {"cache": "always"}, r"cache must be one of \('auto', 'force', 'off'\)"),
    ],
)
def test_a_bad_side_set_is_refused_with_what_to_fix(dataset, options, message):
    with pytest.raises(ValueError, match=message):
        SideSet(dataset, name="meta_dataset", batch_size=8, seed=0, **options)


def test_an_unregistered_side_set_says_to_register_it():
    side = SideSet(META, name="meta_dataset", batch_size=8, seed=0)
    with pytest.raises(RuntimeError, match="not registered with a trainer: call register_side_set"):
        side.next_batch()


def test_the_preflight_probes_the_registered_side_set(tmp_path):
    owner = trainer(tmp_path)
    bad = datasets.Dataset.from_dict({"x": META["x"][:8], "label": [0, 1, 2, 7, 0, 1, 2, 0]})
    side_set(owner, bad)
    with pytest.raises(ValueError, match=r"meta_dataset has labels in \[0, 7\] but the model outputs 3 classes.*row 3"):
        owner.preflight()


def test_a_stream_shorter_than_its_batch_is_refused_at_the_first_draw(tmp_path):
    """The same rows as a map-style set are refused up front; a stream's length shows at the end of its first pass,
    before the draw would take its first rows again."""
    stream = META.select(range(5)).to_iterable_dataset()
    side = side_set(trainer(tmp_path), stream, name="clean_dataset", setting="mlc_clean_batch_size")
    with pytest.raises(ValueError, match=r"^The streamed clean_dataset has 5 examples, fewer than mlc_clean_batch_size "
                       r"\(8\): a batch would hold some examples twice\. Set mlc_clean_batch_size to at most 5, or "
                       r"pass a larger clean_dataset\.$"):  # fmt: skip
        side.next_batch()
