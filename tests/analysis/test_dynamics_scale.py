"""The recorder's cost at the scale of real runs (10⁵–10⁶ samples, tens of epochs), on tiny records."""

import gc
import weakref

import numpy as np
import torch

from hf_lilaw.analysis import TrainingDynamics
from hf_lilaw.analysis.dynamics import TrainingDynamicsRecorder


def test_a_record_growing_epoch_by_epoch_is_not_copied_every_epoch():
    """Each new epoch appended a row with np.concatenate, copying the whole record (and the visit order): O(epochs²
    × samples) in all, 12 s of CPU at 3·10⁵ samples × 100 epochs. The values are those of one-off recording."""
    recorder = TrainingDynamicsRecorder()
    recorder.start(5, weights=True)
    reference = TrainingDynamics.empty(5)
    homes = {}  # the memory the record lived in, kept alive so no two are at one address
    for epoch in range(64):
        ids, stats = torch.tensor([epoch % 5, 4]), {"loss": torch.tensor([epoch, -epoch], dtype=torch.float32)}
        recorder.record(ids, stats, epoch=epoch)
        reference.record(ids[:1] if epoch % 5 == 4 else ids, {"loss": stats["loss"][: 1 if epoch % 5 == 4 else 2]},
                         epoch=epoch)
        for name, value in [("loss", recorder.dynamics.loss), ("w_alpha", recorder.dynamics.w_alpha),
                            ("order", recorder._order)]:
            home = value if value.base is None else value.base
            homes.setdefault(name, {})[id(home)] = home
    assert {name: len(seen) for name, seen in homes.items()} == {"loss": 7, "w_alpha": 7, "order": 7}  # 1, 2, 4 … 64
    assert recorder.dynamics.loss.shape == (64, 5) and recorder._order.shape == (64, 5)
    np.testing.assert_array_equal(recorder.dynamics.loss, reference.loss)
    assert np.isnan(recorder.dynamics.w_alpha).all()
    np.testing.assert_array_equal(recorder._order[:, 4], np.arange(64))


def test_the_visit_order_takes_four_bytes_a_value_and_widens_past_int32():
    """The order of visits (one value per sample and epoch, beside the record's nine float32) was int64: 229 MiB at
    10⁶ samples × 30 epochs where a count of micro-batches fits in int32 until 2³¹ of them."""
    recorder = TrainingDynamicsRecorder()
    recorder.start(3, weights=False)
    recorder.record(torch.tensor([0]), {"loss": torch.ones(1)}, epoch=0)
    assert recorder._order.nbytes == 4 * 3
    recorder._calls = 2**31 - 1  # as after that many micro-batches
    recorder.record(torch.tensor([1]), {"loss": torch.ones(1)}, epoch=0)
    recorder.record(torch.tensor([2, 1]), {"loss": torch.ones(2)}, epoch=1)
    assert recorder._order.tolist() == [[0, 2**31 - 1, -1], [-1, 2**31, 2**31]]


def test_the_finished_record_owns_its_memory_and_the_spare_buffers_are_freed():
    """At the end of training the record stayed the leading rows of its growth buffers (up to twice its rows: 3
    epochs in buffers of 4), alive for as long as the user held `recorder.dynamics`."""
    recorder = TrainingDynamicsRecorder()
    recorder.start(5, weights=False)
    for epoch in range(3):
        recorder.record(torch.arange(5), {"loss": torch.full((5,), float(epoch))}, epoch=epoch)
    assert recorder.dynamics.loss.base is not None and recorder.dynamics.loss.base.shape == (4, 5)
    buffers = [weakref.ref(value.base) for value in vars(recorder.dynamics).values() if value is not None]
    recorder.on_train_end(None, None, None)
    for name, value in vars(recorder.dynamics).items():
        if value is not None:
            assert value.base is None and value.shape == (3, 5), name
    assert recorder._order.base is None and recorder._order.tolist() == [[0] * 5, [1] * 5, [2] * 5]
    gc.collect()
    assert [buffer() for buffer in buffers] == [None] * len(buffers)  # nothing keeps the growth buffers alive
    np.testing.assert_array_equal(recorder.dynamics.loss, np.repeat([[0.0], [1.0], [2.0]], 5, axis=1))
