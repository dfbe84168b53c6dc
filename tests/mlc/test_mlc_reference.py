"""The MLC and EBOMLC steps against step-by-step transcriptions of the authors' released steps on a tiny model.

The transcriptions below are written from reading the released code (MLC: `mlc.py` `step_hmlc_K` with
`update_params_sgd`; EBOMLC: `ebomlc.py` `step_ebomlc`, CIFAR-10 branch) and run on copies of the trainer's model,
meta model and optimizers, on the batches the trainer draws. The spec reading of EBOMLC is the released
transcription with the four documented changes switched.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn

from hf_lilaw.functional.mlc_lookahead import lookahead_steps
from hf_lilaw.mlc import MetaLabelCorrectionConfig, MetaLabelCorrectionTrainer

NUM_LABELS = 3
BATCH = 8
CLEAN_ROWS = 8


def dataset(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, NUM_LABELS, n)
    x = rng.normal(size=(n, 6)).astype("float32") + y[:, None]
    return Dataset.from_dict({"x": x.tolist(), "label": y.tolist()})


# The whole training set is one batch, so the noisy batch of every step is known (its row order does not change a
# mean); the clean batches are read from a copy of the trainer's clean sampler.
TRAIN, CLEAN = dataset(BATCH, 1), dataset(CLEAN_ROWS, 2)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 5), nn.Tanh())
        self.fc = nn.Linear(5, NUM_LABELS)

    def forward(self, x, labels=None):
        return self.fc(self.body(x))


def make_trainer(tmp_path, **overrides):
    torch.manual_seed(0)
    values = dict(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=BATCH, learning_rate=0.1, optim="sgd",
        optim_args="momentum=0.9", weight_decay=0.0, lr_scheduler_type="constant", max_grad_norm=0.0,
        report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0, logging_steps=100,
    )  # fmt: skip
    values.update(overrides)
    return MetaLabelCorrectionTrainer(
        model=Net(), args=MetaLabelCorrectionConfig(**values), train_dataset=TRAIN, clean_dataset=CLEAN
    )


def tensors(rows: Dataset, indices=None):
    rows = rows if indices is None else rows.select(indices)
    return torch.tensor(rows["x"]), torch.tensor(rows["label"])


class Reference:
    """Copies of the trainer's networks with the released code's optimizers (SGD momentum 0.9, Adam amsgrad)."""

    def __init__(self, trainer):
        args = trainer.args
        self.net, self.meta = copy.deepcopy(trainer.model), copy.deepcopy(trainer.meta_model)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=args.learning_rate, momentum=0.9)
        self.meta_opt = torch.optim.Adam(self.meta.parameters(), lr=args.mlc_meta_lr, amsgrad=True)
        self.sampler = copy.deepcopy(trainer.mlc_state.clean_sampler)
        self.args = args

    def batches(self):
        indices = next(self.sampler)
        half = len(indices) // 2
        return tensors(TRAIN), tensors(CLEAN, indices[:half]), tensors(CLEAN, indices[half:])

    def lower_loss(self, noisy, lower):
        (x_s, y_s), (x_c, y_c) = noisy, lower
        soft = self.meta(self.net.body(x_s).detach(), y_s)
        loss_s = -(soft * F.log_softmax(self.net(x_s), -1)).sum(-1).mean()
        loss_c = F.cross_entropy(self.net(x_c), y_c)
        return (loss_s * len(y_s) + loss_c * len(y_c)) / (len(y_s) + len(y_c))

    def sgd_delta(self, grads):
        """The released `update_params(..., deltaonly=True)`: −η·(μ·buf + g + wd·w), the optimizer state read only."""
        out = []
        for p, g in zip(self.net.parameters(), grads):
            buf = self.opt.state[p].get("momentum_buffer")
            moment = g.clone() if buf is None else buf * 0.9 + g
            out.append(-self.opt.param_groups[0]["lr"] * moment)
        return out

    def ebomlc_step(self, *, released: bool):
        noisy, upper, lower = self.batches()
        params, meta = list(self.net.parameters()), list(self.meta.parameters())
        rho, xi, delta = self.args.mlc_rho, self.args.mlc_barrier_scale, self.args.mlc_barrier_threshold

        def upper_loss():
            x_g, y_g = upper
            h = self.net.body(x_g).detach()
            out = self.meta(h, y_g) if released else self.meta.log_probs(h, y_g)  # difference 2: probs vs log-probs
            return F.cross_entropy(rho * self.net(x_g) + (1 - rho) * out, y_g)

        if released:  # difference 2: the upper loss at w, before the look-ahead
            f = upper_loss()
            gf_w, gf_a = torch.autograd.grad(f, params, retain_graph=True), torch.autograd.grad(f, meta)
            df = self.sgd_delta(gf_w)
        g = self.lower_loss(noisy, lower)
        g0_w, g0_a = torch.autograd.grad(g, params, retain_graph=True), torch.autograd.grad(g, meta)
        if released:
            with torch.no_grad():
                for p, d in zip(params, self.sgd_delta(g0_w)):
                    p.add_(d)
        else:
            for p, gw in zip(params, g0_w):
                p.grad = gw.clone()
            self.opt.step()
            self.opt.zero_grad()
        g = self.lower_loss(noisy, lower)
        g1_w, g1_a = torch.autograd.grad(g, params, retain_graph=True), torch.autograd.grad(g, meta)
        dq_w = [a - b for a, b in zip(g0_w, g1_w)]
        dq_a = [a - b for a, b in zip(g0_a, g1_a)]
        if not released:
            f = upper_loss()
            gf_w, gf_a = torch.autograd.grad(f, params, retain_graph=True), torch.autograd.grad(f, meta)
            df = list(gf_w)  # difference 3: BOME's sign, no step scaling
        flat = torch.cat([t.reshape(-1) for t in dq_w + dq_a])
        norm_dq = flat.norm().pow(2)
        dot = torch.dot(torch.cat([t.reshape(-1) for t in dq_w]), torch.cat([t.reshape(-1) for t in df]))
        beta = xi * F.relu((delta * norm_dq - dot) / (norm_dq + 1e-8))
        for p, q, d in zip(params, dq_w, df):
            p.grad = beta * q + d  # difference 4: released λ·∇q − η·d(∇f); spec ∇f + λ·∇q
        for p, q, d in zip(meta, dq_a, gf_a):
            p.grad = beta * q + d
        self.opt.step()
        self.meta_opt.step()
        self.opt.zero_grad()
        self.meta_opt.zero_grad()

    def mlc_step(self):
        """The released `step_hmlc_K` with one gradient step (no discounted history)."""
        noisy, (x_g, y_g), lower = self.batches()
        params = list(self.net.parameters())
        g = self.lower_loss(noisy, lower)
        f_param_grads = torch.autograd.grad(g, params, create_graph=True)
        backup = [p.data for p in params]
        # As released: `.data` is swapped, so the graph of `f_param_grads` still holds w.
        for p, d in zip(params, self.sgd_delta([t.detach() for t in f_param_grads])):
            p.data = p.data + d
        gw_prime = torch.autograd.grad(F.cross_entropy(self.net(x_g), y_g), params)
        eta = self.opt.param_groups[0]["lr"]
        proxy = -sum((fg * (eta * gp)).sum() for fg, gp in zip(f_param_grads, gw_prime))
        self.meta_opt.zero_grad()
        proxy.backward(inputs=list(self.meta.parameters()))
        self.meta_opt.step()
        for p, b, fg in zip(params, backup, f_param_grads):
            p.data = b
            p.grad = fg.detach().clone()
        self.opt.step()
        self.opt.zero_grad()


def assert_same(trainer, reference):
    for a, b in zip(trainer.model.parameters(), reference.net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(trainer.meta_model.parameters(), reference.meta.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["released", "spec"])
def test_ebomlc_matches_the_transcribed_step(tmp_path, variant):
    trainer = make_trainer(tmp_path, mlc_method="ebomlc", mlc_ebomlc_variant=variant)
    reference = Reference(trainer)
    initial = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    for _ in range(3):
        reference.ebomlc_step(released=variant == "released")
    assert_same(trainer, reference)
    assert trainer.state.global_step == 3
    assert all((a - p).abs().max() > 1e-3 for a, p in zip(initial, trainer.model.parameters()))


def test_released_and_spec_ebomlc_differ(tmp_path):
    runs = {}
    for variant in ("released", "spec"):
        trainer = make_trainer(tmp_path / variant, mlc_method="ebomlc", mlc_ebomlc_variant=variant,
                               mlc_label_embedding_init="xavier_uniform")  # fmt: skip
        trainer.train()
        runs[variant] = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    assert (runs["released"] - runs["spec"]).abs().max() > 1e-3


def test_released_variant_uses_a_standard_normal_label_embedding(tmp_path):
    released = make_trainer(tmp_path, mlc_method="ebomlc", mlc_ebomlc_variant="released", mlc_label_embedding_dim=512)
    spec = make_trainer(tmp_path, mlc_method="ebomlc", mlc_label_embedding_dim=512)
    assert released.meta_model.label_embedding.weight.std().item() == pytest.approx(1.0, abs=0.05)
    bound = (6 / (NUM_LABELS + 512)) ** 0.5  # Xavier-uniform: U(−b, b), std b/√3
    assert spec.meta_model.label_embedding.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.1)


def test_mlc_with_sgd_momentum_matches_the_transcribed_step(tmp_path):
    trainer = make_trainer(tmp_path, mlc_method="mlc")
    reference = Reference(trainer)
    trainer.train()
    for _ in range(3):
        reference.mlc_step()
    assert_same(trainer, reference)


@pytest.mark.parametrize(
    "options",
    [
        dict(momentum=0.9, weight_decay=0.01),
        dict(momentum=0.9, dampening=0.3, weight_decay=0.01),
        dict(momentum=0.5, nesterov=True),
        dict(momentum=0.0, weight_decay=0.1, maximize=True),
    ],
)
def test_lookahead_steps_equal_the_sgd_step(options):
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(3))]
    opt = torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": 0.05}], lr=0.2, **options)
    for _ in range(3):  # the first step (no momentum buffer yet) and two with one
        grads = [torch.randn_like(p) for p in params]
        steps = lookahead_steps(opt, params, grads)
        before = [p.detach().clone() for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        for b, p, s in zip(before, params, steps):
            torch.testing.assert_close(b - p.detach(), s, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("max_grad_norm", [0.5, 100.0])
def test_lookahead_steps_clip_as_the_trainer_does_before_its_step(max_grad_norm):
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(3))]
    opt = torch.optim.SGD(params, lr=0.2, momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in params]  # norm about 4: clipped at 0.5, not at 100
        steps = lookahead_steps(opt, params, grads, max_grad_norm=max_grad_norm)
        before = [p.detach().clone() for p in params]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        for b, p, s in zip(before, params, steps):
            torch.testing.assert_close(b - p.detach(), s, rtol=1e-5, atol=1e-7)


def test_lookahead_steps_fall_back_to_a_gradient_step_for_adaptive_optimizers():
    p = nn.Parameter(torch.ones(3))
    g = torch.tensor([1.0, -2.0, 0.5])
    (step,) = lookahead_steps(torch.optim.AdamW([p], lr=1e-3), [p], [g], fallback_lr=0.5)
    torch.testing.assert_close(step, 0.5 * g)
    with pytest.raises(ValueError, match="fallback_lr"):
        lookahead_steps(torch.optim.AdamW([p]), [p], [g])
