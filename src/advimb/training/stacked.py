"""Training many models of one architecture at once, as one stacked model.

The models' parameters are stacked along a new leading dimension
(``torch.func.stack_module_state``) and one ``vmap``-ed ``functional_call`` runs all of
them on their own batches in a single pass: a batch-32 step of M models becomes one
launch-friendly step of M x 32 images (convolutions become grouped convolutions). Each
model keeps everything :func:`advimb.train.fit` gives it: its own training indices, its own
shuffling and flips (the same per-epoch seeds as ``fit``), its own validation set, its own
early stopping, RMSProp state and Keras lr decay (same update as ``torch.optim.RMSprop``,
written out on the stacked tensors). A model that stops early is dropped from the stack
(its best weights kept), which changes nothing for the others.

In float32 and without dropout the result equals training the models one by one up to
float rounding (grouped and single convolutions sum in different orders);
``tests/test_stacked.py`` checks this. With dropout (``vgg_authors``), the masks are drawn
per model from the stack's generator, so they differ from one-by-one training's masks.
Models must share the number of training images and of validation images (the study's
groups: the ten under-sampled models, the ten over-sampled ones).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from advimb.config.sections import TrainConfig
from advimb.config.seeds import derive_seed
from advimb.devices import autocast_dtype
from advimb.training.fit import EarlyStopping, FitResult, compiled, keras_lr


def _float(x_u8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(M, B, H, W, C)`` -> float ``(M, B, C, H, W)`` in [0, 1]."""
    return x_u8.permute(0, 1, 4, 2, 3).float().div_(255)


def stackable(model: nn.Module) -> bool:
    """Batch norm keeps running statistics in place, which vmap-ed training cannot update
    per model: such models train one by one."""
    return not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _has_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


def fit_stacked(
    models: Sequence[nn.Module],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    train_idx: Sequence[torch.Tensor],
    val: Sequence[tuple[torch.Tensor, torch.Tensor]],
    cfg: TrainConfig,
    *,
    seeds: Sequence[int],
    augment: Sequence[bool],
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> list[FitResult]:
    """Train ``models`` (same architecture) together; returns one :class:`FitResult` each.

    ``x_train``/``y_train``: the whole training set, uint8 NHWC / int64, on the device;
    ``train_idx[m]``: model m's training indices into it (all of one length); ``val[m]``:
    model m's validation images and labels (all of one length). ``seeds``/``augment``: per
    model, as ``fit``'s ``seed``/``augment``. Precision (``cfg.precision``)
    and ``cfg.compile`` as in ``fit``.
    """
    if not stackable(models[0]):
        raise ValueError("models with batch norm cannot be trained stacked; train them one by one (fit)")
    n = len(train_idx[0])
    if any(len(t) != n for t in train_idx) or any(len(v[0]) != len(val[0][0]) for v in val):
        raise ValueError("stacked models need equal numbers of training and of validation images")
    st = _Stack(models, cfg, x_train.device, resume)
    idx_all = torch.stack([t.to(x_train.device) for t in train_idx])  # (M, n)
    for epoch in range(st.start_epoch, cfg.max_epochs):
        if not st.active:
            break
        t0 = time.perf_counter()
        loss_sum, correct = st.epoch((x_train, y_train), idx_all, epoch, seeds, augment,
                                     f"{desc} ({len(st.active)} models) epoch {epoch + 1}", progress)
        st.close_epoch(epoch, loss_sum / n, correct.float() / n, val, t0)
        if on_epoch_end is not None:
            on_epoch_end(st.state(epoch + 1))
    return st.results(models, n)


class _Stack:
    """The stacked models' training state: parameters and RMSProp accumulators stacked along
    a leading model dimension, the models still training (``active``), each model's early
    stopping, history, best weights and buffers, and the step count."""

    def __init__(self, models: Sequence[nn.Module], cfg: TrainConfig, device: torch.device,
                 resume: dict[str, Any] | None) -> None:
        self.cfg, self.device = cfg, device
        self.amp = amp = autocast_dtype(cfg.precision, device)
        m_all = len(models)
        self.base = base = copy.deepcopy(models[0]).to("meta")
        params, self.buffers = stack_module_state(list(models))
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        randomness = "different" if _has_dropout(models[0]) else "error"

        def loss_fn(p, b, x, y):
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                out = functional_call(base, (p, b), (x,))
            return F.cross_entropy(out.float(), y), out

        self.step_fn = compiled(vmap(grad_and_value(loss_fn, has_aux=True), in_dims=(0, 0, 0, 0),
                                     randomness=randomness), cfg.compile, device)

        def eval_fn(p, b, x):
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                return functional_call(base, (p, b), (x,)).float()

        self.eval_v = vmap(eval_fn, in_dims=(0, 0, 0))
        self.graphs = cfg.compile == "on" and device.type == "cuda"  # CUDA graphs: one step, one replay
        self.active = list(range(m_all))  # model numbers still in the stack, in stack order
        self.stoppers = [EarlyStopping(cfg.min_delta, cfg.patience) for _ in range(m_all)]
        self.histories: list[list[dict[str, float]]] = [[] for _ in range(m_all)]
        self.best = [{k: v[i].clone() for k, v in self.params.items()} for i in range(m_all)]
        self.bufs = [{k: v[i].clone() for k, v in self.buffers.items()} for i in range(m_all)]
        self.start_epoch, self.step = 0, 0
        if resume is not None:
            self.params, self.sq, self.buffers = resume["params"], resume["sq"], resume["buffers"]
            self.active, self.best, self.histories = list(resume["active"]), resume["best"], resume["histories"]
            for s, d in zip(self.stoppers, resume["stoppers"]):
                s.load_state_dict(d)
            self.start_epoch, self.step = int(resume["epoch"]), int(resume["step"])

    def state(self, epoch: int) -> dict[str, Any]:
        """What a checkpoint holds after ``epoch``."""
        return {"epoch": epoch, "step": self.step, "params": self.params, "sq": self.sq, "buffers": self.buffers,
                "active": self.active, "best": self.best, "histories": self.histories,
                "stoppers": [s.state_dict() for s in self.stoppers]}

    def epoch(self, train: tuple[torch.Tensor, torch.Tensor], idx_all: torch.Tensor, epoch: int,
              seeds: Sequence[int], augment: Sequence[bool], desc: str,
              progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass of every active model over its own training set, in its own order (the
        same per-epoch streams as ``fit``); returns the summed losses and correct counts."""
        from tqdm.auto import tqdm

        x_train, y_train = train
        cfg, device, active, n = self.cfg, self.device, self.active, idx_all.shape[1]
        perms, flips = [], []
        for i in active:  # the same per-epoch streams as fit()
            gen = torch.Generator().manual_seed(derive_seed(seeds[i], "shuffle", epoch))
            perms.append(torch.randperm(n, generator=gen))
            flips.append(torch.rand(n, generator=gen) < 0.5 if augment[i] else torch.zeros(n, dtype=torch.bool))
        torch.manual_seed(derive_seed(seeds[active[0]], "dropout", epoch))
        order = torch.gather(idx_all[active], 1, torch.stack(perms).to(device))  # (A, n)
        flip = torch.stack(flips).to(device)
        loss_sum = torch.zeros(len(active), device=device)
        correct = torch.zeros(len(active), device=device, dtype=torch.long)
        self.base.train()
        bar = tqdm(total=n * len(active), desc=f"{desc}/{cfg.max_epochs}", unit="img", leave=False,
                   disable=not progress, mininterval=0.5)
        for s in range(0, n, cfg.batch_size):
            ib = order[:, s:s + cfg.batch_size]
            xb = _float(x_train[ib])
            fb = flip[:, s:s + cfg.batch_size]
            xb = torch.where(fb[:, :, None, None, None], xb.flip(4), xb)
            yb = y_train[ib]
            if self.graphs:
                torch.compiler.cudagraph_mark_step_begin()
            grads, (loss, out) = self.step_fn(self.params, self.buffers, xb, yb)
            with torch.no_grad():
                self.rmsprop(grads, keras_lr(cfg.lr, cfg.decay, self.step))
                loss_sum += loss.detach() * ib.shape[1]
                correct += (out.argmax(2) == yb).sum(1)
            self.step += 1
            bar.update(ib.numel())
        bar.close()
        return loss_sum, correct

    def rmsprop(self, grads: dict[str, torch.Tensor], lr: float) -> None:
        """torch.optim.RMSprop's update (alpha = rho), as foreach ops: a handful of kernel
        launches for all parameters of all models."""
        cfg = self.cfg
        keys = list(self.params)
        p_l, s_l, g_l = [self.params[k] for k in keys], [self.sq[k] for k in keys], [grads[k] for k in keys]
        torch._foreach_mul_(s_l, cfg.rho)
        torch._foreach_addcmul_(s_l, g_l, g_l, value=1 - cfg.rho)
        denom = torch._foreach_sqrt(s_l)
        torch._foreach_add_(denom, cfg.eps)
        torch._foreach_addcdiv_(p_l, g_l, denom, value=-lr)

    def close_epoch(self, epoch: int, train_loss: torch.Tensor, train_acc: torch.Tensor,
                    val: Sequence[tuple[torch.Tensor, torch.Tensor]], t0: float) -> None:
        """Validate every active model, record its epoch, keep its best weights, and drop the
        models that stop early from the stack (which changes nothing for the others)."""
        cfg, active = self.cfg, self.active
        self.base.eval()  # validation without dropout, as fit()'s evaluate_loss
        val_loss, val_acc = _evaluate(self.eval_v, self.params, self.buffers, [val[i] for i in active])
        tl, ta = train_loss.tolist(), train_acc.tolist()
        keep = []
        for j, i in enumerate(active):
            self.histories[i].append({"epoch": epoch + 1, "loss": tl[j], "accuracy": ta[j], "val_loss": val_loss[j],
                                      "val_accuracy": val_acc[j], "lr": keras_lr(cfg.lr, cfg.decay, self.step),
                                      "seconds": time.perf_counter() - t0})
            if self.stoppers[i].step(val_loss[j], epoch + 1):
                self.best[i] = {k: v[j].detach().clone() for k, v in self.params.items()}
            if self.stoppers[i].should_stop:
                self.bufs[i] = {k: v[j].clone() for k, v in self.buffers.items()}
            else:
                keep.append(j)
        if not cfg.restore_best:
            for j, i in enumerate(active):
                self.best[i] = {k: v[j].detach().clone() for k, v in self.params.items()}
        if len(keep) < len(active):  # drop the stopped models from the stack
            sel = torch.tensor(keep, device=self.device, dtype=torch.long)
            self.params = {k: v[sel] for k, v in self.params.items()}
            self.sq = {k: v[sel] for k, v in self.sq.items()}
            self.buffers = {k: v[sel] for k, v in self.buffers.items()}
            self.active = [active[j] for j in keep]

    def results(self, models: Sequence[nn.Module], n: int) -> list[FitResult]:
        """Each model's kept weights (best, or last without ``restore_best``) loaded into it."""
        for j, i in enumerate(self.active):  # ran to max_epochs
            self.bufs[i] = {k: v[j].clone() for k, v in self.buffers.items()}
        results = []
        for i, model in enumerate(models):
            model.load_state_dict({**self.best[i], **self.bufs[i]})
            h = self.histories[i]
            results.append(FitResult(model.state_dict(), h, self.stoppers[i].best_epoch, h[-1]["epoch"] if h else 0,
                                     step_count(h, n, self.cfg.batch_size)))
        return results


def step_count(history: list[dict[str, float]], n: int, batch_size: int) -> int:
    """Optimizer steps a model took: its epochs times the steps per epoch."""
    return len(history) * ((n + batch_size - 1) // batch_size)


@torch.no_grad()
def _evaluate(eval_v, params, buffers, val: list[tuple[torch.Tensor, torch.Tensor]],
              batch_size: int = 500) -> tuple[list[float], list[float]]:
    """Mean cross-entropy and accuracy of every stacked model on its own validation set."""
    x = torch.stack([v[0] for v in val])
    y = torch.stack([v[1] for v in val])
    nv = x.shape[1]
    loss = torch.zeros(len(val), device=x.device)
    correct = torch.zeros(len(val), device=x.device, dtype=torch.long)
    for s in range(0, nv, batch_size):
        out = eval_v(params, buffers, _float(x[:, s:s + batch_size]))
        yb = y[:, s:s + batch_size]
        loss += F.cross_entropy(out.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape).sum(1)
        correct += (out.argmax(2) == yb).sum(1)
    d = max(nv, 1)
    return (loss / d).tolist(), (correct.float() / d).tolist()
