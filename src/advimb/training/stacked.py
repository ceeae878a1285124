"""Training every model of a study at once, as one stacked model of one fixed shape.

The models' parameters are stacked along a new leading dimension
(``torch.func.stack_module_state``) and one ``vmap``-ed ``functional_call`` runs all of
them, each on its own batch, in a single pass: a batch-32 step of M models becomes one
launch-friendly step of M x 32 images (convolutions become grouped convolutions).

Each model keeps everything :func:`advimb.training.fit.fit` gives it, whatever its
training-set size: its own epochs (an epoch is a pass over that model's images, so models
with smaller sets finish their epochs after fewer steps), its own shuffling and flips (the
same per-epoch seeds as ``fit``), its own validation set and early stopping, its own RMSProp
state and Keras lr decay, and its defence's class weights, logit adjustment or re-sampling.

**One shape for the whole run**, so a compiled step (one CUDA graph on a GPU) never
recompiles: every step takes ``batch_size`` samples from every model. An epoch's last,
smaller batch is padded with zero-weight samples (the loss is the weighted sum over the
real samples divided by their number, so the gradient equals that of the smaller batch),
and a model that has stopped (early stopping or ``max_epochs``) stays in the stack with
zero weight on every sample: its gradient is exactly zero, so its weights no longer move,
and the others are unaffected (vmap keeps the models independent). The price is wasted
work: padding, and stopped models' steps (:func:`advimb.training.waste.wasted_work`).

In float32 without dropout the result equals one-by-one training up to float rounding
(``tests/test_stacked.py``: unequal sizes, padded batches, early stops at different epochs,
class weights, re-sampling). With dropout (``vgg_authors``) the masks are drawn per model
from the stack's generator, so they differ from one-by-one training's.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from advimb.config.sections import TrainConfig
from advimb.config.seeds import derive_seed
from advimb.devices import autocast_dtype, fair_threads
from advimb.log import log
from advimb.training.defences import Regime
from advimb.training.fit import EarlyStopping, FitResult, compiled, keras_lr, rng_scope
from advimb.training.regimes import epoch_order, epoch_size
from advimb.training.stacked_ops import has_dropout, rmsprop_, stack_to_float, stack_validation, stackable


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
    regimes: Sequence[Regime] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
    desc: str = "train",
    progress: bool = True,
) -> list[FitResult]:
    """Train ``models`` (one architecture, any training- and validation-set sizes) together;
    returns one :class:`FitResult` each, as :func:`~advimb.training.fit.fit` would.

    ``x_train``/``y_train``: the whole training set, uint8 NHWC / int64, on the device;
    ``train_idx[m]``: model m's training indices into it; ``val[m]``: model m's validation
    images and labels. ``seeds``/``augment``/``regimes``: per model, as ``fit``'s
    ``seed``/``augment``/``regime`` (class weights and re-sampling; not adversarial training,
    which trains one by one). ``on_epoch_end(state)`` is called after every step at which some
    model finished an epoch, with a state ``resume`` continues from exactly.
    """
    from tqdm.auto import tqdm

    regimes = list(regimes) if regimes is not None else [Regime() for _ in models]
    if not stackable(models[0]):
        raise ValueError("models with batch norm cannot be trained stacked; train them one by one (fit)")
    if any(r.images is not None or r.loss != Regime().loss for r in regimes):
        raise ValueError(
            "adversarial training and losses other than cross-entropy need each model's own step; "
            "train it one by one (fit)"
        )
    with rng_scope(x_train.device):  # the stack seeds the dropout masks' stream itself (_Stack), in this scope
        st = _Stack(models, (x_train, y_train), train_idx, val, cfg, seeds, augment, regimes, resume)
        bar = tqdm(
            total=st.upper_bound(),
            initial=st.images_done,
            desc=f"{desc} ({len(models)} models)",
            unit="img",
            disable=not progress,
            mininterval=0.5,
        )
        while st.running():
            t0 = time.perf_counter()
            bar.update(st.tick())
            if st.tick_count <= 3 and st.cfg.compile == "on":
                st.report_warmup(time.perf_counter() - t0)
            ending = st.ending()
            if ending:
                st.close_epochs(ending)
                bar.set_postfix_str(f"{st.done.count(False)} training", refresh=False)
                if on_epoch_end is not None:
                    on_epoch_end(st.state())
                fair_threads()  # this study's share of the cores, re-counted when an epoch ends
        bar.close()
    return st.results(models)


class _Stack:
    """The stack's training state. Static per model: its training indices, its validation
    set (padded to the longest), its steps per epoch. Changing per model: its epoch, the step
    at which that epoch began, whether it has stopped, its early stopping, history, best
    weights, and the current epoch's order, flips and sample weights (rows of fixed length).
    Shared: the stacked parameters, RMSProp accumulators and the step count (Keras
    ``iterations``: every model still training has taken exactly ``tick_count`` steps)."""

    def __init__(
        self,
        models: Sequence[nn.Module],
        train: tuple[torch.Tensor, torch.Tensor],
        train_idx: Sequence[torch.Tensor],
        val: Sequence[tuple[torch.Tensor, torch.Tensor]],
        cfg: TrainConfig,
        seeds: Sequence[int],
        augment: Sequence[bool],
        regimes: Sequence[Regime],
        resume: dict[str, Any] | None,
    ) -> None:
        self.cfg, self.x, self.y = cfg, train[0], train[1]
        self.device = device = self.x.device
        self.seeds, self.augment, self.regimes = list(seeds), list(augment), list(regimes)
        self.m = m = len(models)
        self.idx = [t.to(device) for t in train_idx]
        self.n = [
            epoch_size(self.y[i], r) for i, r in zip(self.idx, regimes)
        ]  # images per epoch (re-sampling tops classes up)
        if min(self.n) == 0:
            raise ValueError("a stacked model has no training images")
        b = cfg.batch_size
        self.steps = [math.ceil(n / b) for n in self.n]
        self.width = max(self.steps) * b
        self.cw = [torch.tensor(r.class_weight, device=device) if r.class_weight else None for r in regimes]
        with torch.no_grad():  # the number of classes: what the model outputs
            classes = (
                copy.deepcopy(models[0])
                .eval()(torch.zeros(1, *(self.x.shape[i] for i in (3, 1, 2)), device=device))
                .shape[1]
            )
        self.adjust = torch.tensor([list(r.logit_adjust) or [0.0] * classes for r in regimes], device=device)
        self._build_fns(models[0])
        params, buffers = stack_module_state(list(models))
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self.sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.xv, self.yv, self.vmask, self.nv = stack_validation(val, device)
        self.order = torch.zeros(m, self.width, dtype=torch.long, device=device)
        self.weight = torch.zeros(m, self.width, device=device)
        self.real = torch.zeros(m, self.width, device=device)
        self.flip = torch.zeros(m, self.width, dtype=torch.bool, device=device)
        self.pos = torch.zeros(m, dtype=torch.long, device=device)  # each model's offset in its epoch
        self.offsets = torch.arange(b, device=device)
        self.loss_sum = torch.zeros(m, device=device)
        self.correct = torch.zeros(m, device=device)
        self.stoppers = [EarlyStopping(cfg.min_delta, cfg.patience) for _ in range(m)]
        self.histories: list[list[dict[str, float]]] = [[] for _ in range(m)]
        self.best = [{k: v[i].clone() for k, v in self.params.items()} for i in range(m)]
        self.epoch, self.begin, self.done = [0] * m, [0] * m, [cfg.max_epochs <= 0] * m
        self.tick_count, self.t0 = 0, [time.perf_counter()] * m
        if resume is not None:
            self._load(resume)
        for i in range(m):
            self._start_epoch(i) if not self.done[i] else self._retire(i)
        self._schedule()
        torch.manual_seed(derive_seed(self.seeds[0], "dropout", self.tick_count))

    def _build_fns(self, model: nn.Module) -> None:
        """The vmap-ed step (gradient, loss and logits of every model on its batch, one fixed
        shape) and the vmap-ed evaluation."""
        cfg, device = self.cfg, self.device
        self.amp = amp = autocast_dtype(cfg.precision, device)
        self.base = base = copy.deepcopy(model).to("meta").train()  # dropout on while training

        def loss_fn(p, b, x, y, w, r, adj):
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                out = functional_call(base, (p, b), (x,))
            ce = F.cross_entropy(out.float() + adj, y, reduction="none")
            return (ce * w).sum() / r.sum().clamp_min(1), out

        def eval_fn(p, b, x):
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                return functional_call(base, (p, b), (x,)).float()

        randomness = "different" if has_dropout(model) else "error"
        step = vmap(grad_and_value(loss_fn, has_aux=True), randomness=randomness)
        self.step_fn = compiled(step, cfg.compile, device, "the stacked step")
        self.eval_v = vmap(eval_fn)
        self.warmup = 0.0

    def _start_epoch(self, i: int) -> None:
        """Model i's rows for its current epoch: the order, flips (fit's per-epoch stream)
        and sample weights, padded to the stack's width with zero-weight samples."""
        e, n, b = self.epoch[i], self.n[i], self.cfg.batch_size
        gen = torch.Generator().manual_seed(derive_seed(self.seeds[i], "shuffle", e))
        perm = epoch_order(self.y[self.idx[i]].cpu(), self.regimes[i], gen).to(self.device)
        if len(perm) != n:
            raise RuntimeError(f"model {i}: epoch {e} has {len(perm)} images, not {n}")
        flips = torch.rand(n, generator=gen) < 0.5 if self.augment[i] else torch.zeros(n, dtype=torch.bool)
        glob = self.idx[i][perm]
        self.order[i].fill_(int(glob[0]))
        self.order[i, :n] = glob
        self.real[i].zero_()
        self.real[i, :n] = 1
        cw = self.cw[i]
        self.weight[i] = self.real[i] if cw is None else self.real[i] * cw[self.y[self.order[i]]]
        self.flip[i].zero_()
        self.flip[i, :n] = flips.to(self.device)
        self.pos[i] = (self.tick_count - self.begin[i]) * b
        self.t0[i] = time.perf_counter()

    def _retire(self, i: int) -> None:
        """Model i has stopped: it stays in the stack (same shapes) with zero weight."""
        self.done[i] = True
        self.real[i].zero_()
        self.weight[i].zero_()
        self.pos[i] = 0

    def running(self) -> bool:
        return not all(self.done)

    def tick(self) -> int:
        """One step of every model on its next batch; returns the real images trained."""
        b = self.cfg.batch_size
        pos = self.pos[:, None] + self.offsets
        ib = self.order.gather(1, pos)
        real, w = self.real.gather(1, pos), self.weight.gather(1, pos)
        xb = stack_to_float(self.x[ib])
        xb = torch.where(self.flip.gather(1, pos)[:, :, None, None, None], xb.flip(4), xb)
        yb = self.y[ib]
        grads, (loss, out) = self.step_fn(self.params, self.buffers, xb, yb, w, real, self.adjust)
        with torch.no_grad():
            rmsprop_(
                self.params,
                self.sq,
                grads,
                keras_lr(self.cfg.lr, self.cfg.decay, self.tick_count),
                self.cfg.rho,
                self.cfg.eps,
            )
            count = real.sum(1)
            self.loss_sum += loss.detach() * count
            self.correct += ((out.argmax(2) == yb) * real).sum(1)
            self.pos += b * (count > 0)
        self.tick_count += 1
        if self.tick_count < self.next_end:  # no epoch ends at this step: every batch is full
            return b * self.active
        return sum(
            min(b, self.n[i] - (self.tick_count - 1 - self.begin[i]) * b) for i in range(self.m) if not self.done[i]
        )

    def report_warmup(self, seconds: float) -> None:
        """Log the first steps' time: compiling (and capturing the CUDA graph) happens there."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.warmup += seconds
        if self.tick_count == 3:
            log(f"compiled the stacked training step ({self.m} models): first 3 steps took {self.warmup:.1f} s")

    def ending(self) -> list[int]:
        """The models whose epoch ended with the step just taken (known without a sync)."""
        if self.tick_count != self.next_end:
            return []
        return [i for i in range(self.m) if not self.done[i] and self.tick_count - self.begin[i] == self.steps[i]]

    def _schedule(self) -> None:
        """The next step at which some model's epoch ends, and how many models are training."""
        ends = [self.begin[i] + self.steps[i] for i in range(self.m) if not self.done[i]]
        self.next_end, self.active = min(ends, default=-1), len(ends)

    def close_epochs(self, ending: list[int]) -> None:
        """Validate the models whose epoch ended, record the epoch, keep their best weights,
        retire those that stop and start the next epoch of the others."""
        cfg = self.cfg
        val_loss, val_acc = self._evaluate(ending)
        sel = torch.tensor(ending, device=self.device)
        tl = (self.loss_sum[sel].cpu() / torch.tensor([self.n[i] for i in ending])).tolist()
        ta = (self.correct[sel].cpu() / torch.tensor([self.n[i] for i in ending])).tolist()
        self.loss_sum[sel], self.correct[sel] = 0.0, 0.0
        lr = keras_lr(cfg.lr, cfg.decay, self.tick_count)
        for j, i in enumerate(ending):
            self.epoch[i] += 1
            self.histories[i].append(
                {
                    "epoch": self.epoch[i],
                    "loss": tl[j],
                    "accuracy": ta[j],
                    "val_loss": val_loss[j],
                    "val_accuracy": val_acc[j],
                    "lr": lr,
                    "seconds": time.perf_counter() - self.t0[i],
                }
            )
            improved = self.stoppers[i].step(val_loss[j], self.epoch[i])
            if improved or not cfg.restore_best:
                self.best[i] = {k: v[i].detach().clone() for k, v in self.params.items()}
            self.begin[i] = self.tick_count
            if self.stoppers[i].should_stop or self.epoch[i] >= cfg.max_epochs:
                self._retire(i)
            else:
                self._start_epoch(i)
        self._schedule()
        torch.manual_seed(derive_seed(self.seeds[0], "dropout", self.tick_count))

    @torch.no_grad()
    def _evaluate(self, which: list[int], images: int = 16384) -> tuple[list[float], list[float]]:
        """Mean cross-entropy and accuracy of the stacked models ``which`` on their own
        validation sets, all of them in one vmap-ed pass per batch (``images`` in all)."""
        batch_size = max(16, min(500, images // len(which)))
        self.base.eval()  # validation without dropout, as fit()'s evaluate_loss
        sel = torch.tensor(which, device=self.device)
        params = {k: v[sel] for k, v in self.params.items()}
        buffers = {k: v[sel] for k, v in self.buffers.items()}
        loss = torch.zeros(len(which), device=self.device)
        correct = torch.zeros(len(which), device=self.device)
        for s in range(0, self.xv.shape[1], batch_size):
            x, y, mask = (t[:, s : s + batch_size][sel] for t in (self.xv, self.yv, self.vmask))
            out = self.eval_v(params, buffers, stack_to_float(x))
            ce = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
            loss += (ce * mask).sum(1)
            correct += ((out.argmax(2) == y) * mask).sum(1)
        self.base.train()
        d = torch.tensor([max(self.nv[i], 1) for i in which], dtype=torch.float32)
        return (loss.cpu() / d).tolist(), (correct.cpu() / d).tolist()

    def upper_bound(self) -> int:
        """Images the run trains if no model stops early (the progress bar's total)."""
        return sum(n * self.cfg.max_epochs for n in self.n)

    @property
    def images_done(self) -> int:
        b = self.cfg.batch_size
        return sum(
            self.n[i] * self.epoch[i] + (0 if self.done[i] else (self.tick_count - self.begin[i]) * b)
            for i in range(self.m)
        )

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds after a step at which some model finished an epoch."""
        done = sum(len(h) for h in self.histories)
        return {
            "epoch": max(self.epoch),
            "step": self.tick_count,
            "where": f"step {self.tick_count} "
            f"({done} model epochs done, {self.done.count(False)} of {self.m} models training)",
            "params": self.params,
            "sq": self.sq,
            "buffers": self.buffers,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "epochs": list(self.epoch),
            "begin": list(self.begin),
            "done": list(self.done),
            "best": self.best,
            "histories": self.histories,
            "stoppers": [s.state_dict() for s in self.stoppers],
        }

    def _load(self, state: dict[str, Any]) -> None:
        for k in ("params", "sq", "buffers"):
            setattr(self, k, {n: v.to(self.device) for n, v in state[k].items()})
        self.loss_sum, self.correct = state["loss_sum"].to(self.device), state["correct"].to(self.device)
        self.epoch, self.begin, self.done = list(state["epochs"]), list(state["begin"]), list(state["done"])
        self.best, self.histories = state["best"], [list(h) for h in state["histories"]]
        for s, d in zip(self.stoppers, state["stoppers"]):
            s.load_state_dict(d)
        self.tick_count = int(state["step"])

    def results(self, models: Sequence[nn.Module]) -> list[FitResult]:
        """Each model's kept weights (best, or last without ``restore_best``) loaded into it."""
        results = []
        for i, model in enumerate(models):
            bufs = {k: v[i].clone() for k, v in self.buffers.items()}
            model.load_state_dict({**self.best[i], **bufs})
            h = self.histories[i]
            results.append(
                FitResult(
                    model.state_dict(),
                    h,
                    self.stoppers[i].best_epoch,
                    int(h[-1]["epoch"]) if h else 0,  # an int (epoch + 1) in a dict of floats
                    len(h) * self.steps[i],
                )
            )
        return results
