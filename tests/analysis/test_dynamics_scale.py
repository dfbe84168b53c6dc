"""The recorder's cost at the scale of real runs (10⁵–10⁶ samples, tens of epochs), on tiny records."""

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
