"""Run by tests/mlc/test_mlc_distributed.py under `torchrun --nproc_per_node 2`: train, stop, resume; dump each rank.

With `mlc` it also records how far each look-ahead step is from the step the model then took, and runs `mlc_step`
on each rank's half of two batches against the one-process step on the whole batches.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.func import functional_call
from transformers import TrainerCallback

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]  # tests/, for conftest; the checkout's hf_lilaw, not an installed one
import hf_lilaw.functional.mlc_second_order as second_order  # noqa: E402
from _distributed import write_rank_result  # noqa: E402
from conftest import StopAfter, TinyNet, blobs  # noqa: E402
from hf_lilaw.functional import MetaStepInputs, mlc_step  # noqa: E402
from hf_lilaw.mlc import MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer  # noqa: E402
from hf_lilaw.mlc.meta_model import LabelCorrectionNetwork  # noqa: E402

MAX_GRAD_NORM = 0.1  # below the gradient norms of these runs: the Trainer clips every step


def make(output_dir, method, callbacks=None):
    torch.manual_seed(0)
    args = MetaLabelCorrectionConfig(
        output_dir=output_dir, mlc_method=method, per_device_train_batch_size=8, mlc_clean_batch_size=6,
        max_steps=8, learning_rate=0.05, save_strategy="steps", save_steps=4, logging_steps=2, report_to=[],
        disable_tqdm=True, seed=0, use_cpu=True, max_grad_norm=MAX_GRAD_NORM,
        # MLC's look-ahead is SGD's own step (an adaptive optimizer's is a plain gradient step, not the one it takes)
        **(dict(optim="sgd", optim_args="momentum=0.9") if method == "mlc" else {}),
    )  # fmt: skip
    return MetaLabelCorrectionTrainer(
        model=TinyNet(), args=args, train_dataset=blobs(96).remove_columns(["clean_label", "is_noisy"]),
        clean_dataset=blobs(24, noise_rate=0.0, seed=1).remove_columns(["clean_label", "is_noisy"]),
        callbacks=callbacks,
    )


def summary(trainer):
    return {
        "global_step": trainer.state.global_step,
        "weights": torch.cat([p.detach().flatten() for p in trainer.model.parameters()]).tolist(),
        "meta": torch.cat([p.detach().flatten() for p in trainer.meta_model.parameters()]).tolist(),
        "logged": [h["mlc/upper_loss"] for h in trainer.state.log_history if "mlc/upper_loss" in h],
    }


class LookaheadGap(TrainerCallback):
    """Per optimizer step: the largest gap between MLC's look-ahead step and the step the model took, and the
    gradient norm before clipping."""

    def __init__(self):
        self.gaps, self.norms, self._lookahead = [], [], None
        lookahead_steps = second_order.lookahead_steps

        def spy(optimizer, params, grads, **kwargs):
            steps = lookahead_steps(optimizer, params, grads, **kwargs)
            self._lookahead = torch.cat([s.detach().flatten() for s in steps])
            self.norms.append(float(torch.cat([g.detach().flatten() for g in grads]).norm()))
            return steps

        second_order.lookahead_steps = spy

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        taken = self._before - torch.cat([p.detach().flatten() for p in model.parameters()])
        self.gaps.append(float((taken - self._lookahead).abs().max()))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 5), nn.Tanh())
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        h = self.body(x)
        return self.fc(h), h


def split_step_gap():
    """Largest gap (main `.grad`, meta parameters after the step) between `mlc_step` on this rank's half of the
    batches, gradients averaged across processes, and `mlc_step` on the whole batches with no averaging."""
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 4, generator=generator), torch.randint(0, 3, (8,), generator=generator)
    x_up, y_up = torch.randn(4, 4, generator=generator), torch.randint(0, 3, (4,), generator=generator)

    def mean(grads):
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        return [t.view_as(g) for t, g in zip((flat / dist.get_world_size()).split([g.numel() for g in grads]), grads)]

    def run(rows, up_rows, reduce):
        torch.manual_seed(0)
        net = Net()
        meta = LabelCorrectionNetwork(feature_dim=5, num_labels=3, label_embedding_dim=2, hidden_dim=4, skip_gate=True)

        def forward(inputs, params=None):
            return net(**inputs) if params is None else functional_call(net, params, (), inputs)

        inputs = MetaStepInputs(
            net=net, meta_model=meta, meta_optimizer=torch.optim.SGD(meta.parameters(), lr=0.5), forward=forward,
            noisy=({"x": x[rows]}, y[rows]), upper=({"x": x_up[up_rows]}, y_up[up_rows]), lower=None, reduce=reduce,
        )  # fmt: skip
        optimizer = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
        mlc_step(inputs, optimizer=optimizer, inner_lr=0.5, max_grad_norm=MAX_GRAD_NORM)
        grads = [p.grad.flatten() for p in net.parameters()]
        return torch.cat(grads + [p.detach().flatten() for p in meta.parameters()])

    rank = dist.get_rank()
    whole = run(slice(None), slice(None), list)
    half = run(slice(4 * rank, 4 * rank + 4), slice(2 * rank, 2 * rank + 2), mean)
    return float((whole - half).abs().max())


if __name__ == "__main__":
    out, method = sys.argv[1], sys.argv[2]
    gap = LookaheadGap() if method == "mlc" else None
    full = make(os.path.join(out, "full"), method, callbacks=[gap] if gap else None)
    full.train()
    make(os.path.join(out, "resumed"), method, callbacks=[StopAfter(4)]).train()
    resumed = make(os.path.join(out, "resumed"), method)
    resumed.train(resume_from_checkpoint=os.path.join(out, "resumed", "checkpoint-4"))
    result = {"full": summary(full), "resumed": summary(resumed),
              "files": sorted(os.listdir(os.path.join(out, "resumed", "checkpoint-4")))}  # fmt: skip
    if gap is not None:
        result.update(lookahead_gaps=gap.gaps, lookahead_grad_norms=gap.norms, split_step_gap=split_step_gap())
    write_rank_result(out, result)
