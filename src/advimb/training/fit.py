"""Training with the paper's optimiser: RMSProp with Keras semantics, inverse-time decay
per iteration, batch 32, early stopping on validation loss with the best weights restored.

Keras RMSprop (2.x): a = rho*a + (1-rho)*g^2; w -= lr_t * g / (sqrt(a) + eps), which is
``torch.optim.RMSprop(alpha=rho, eps=eps)``; lr_t = lr / (1 + decay * t), t = number of
updates done before this one (Keras ``iterations``).

Every epoch is reproducible on its own: its batch order, flips and dropout masks are drawn
from seeds derived from (seed, epoch), so a run resumed from an epoch checkpoint gives the
same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advimb.config.sections import TrainConfig
from advimb.config.seeds import derive_seed
from advimb.devices import autocast_dtype, fair_threads, to_float
from advimb.log import log
from advimb.training.defences import CrossEntropy, Loss, Regime
from advimb.training.policy import crop_padding
from advimb.training.regimes import epoch_order

CROSS_ENTROPY = CrossEntropy()  # the default loss of a step


def keras_lr(lr: float, decay: float, t: int) -> float:
    """Keras inverse-time decay: lr / (1 + decay * t) at iteration t (0-based)."""
    return lr / (1.0 + decay * t)


class EarlyStopping:
    """Keras ``EarlyStopping(monitor='val_loss', mode='min')``.

    An epoch improves when ``value < best - min_delta``; training stops after
    ``patience`` consecutive epochs without improvement.
    """

    def __init__(self, min_delta: float, patience: int) -> None:
        self.min_delta, self.patience = min_delta, patience
        self.best = math.inf
        self.best_epoch = -1
        self.wait = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record epoch ``epoch``'s value; return True when it is a new best."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.wait >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.wait = float(d["best"]), int(d["best_epoch"]), int(d["wait"])


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """RMSProp with Keras' settings (the paper's) or SGD with momentum, both with
    ``weight_decay`` (coupled L2, as ``torch.optim``)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    return torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=cfg.rho, eps=cfg.eps, weight_decay=cfg.weight_decay)


def random_crop(x: torch.Tensor, shifts: torch.Tensor, pad: int) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) zero-padded by ``pad`` and cropped back to H x W at
    its offsets ``shifts[i] = (dy, dx)`` in [0, 2 pad] (torchvision's ``RandomCrop(H,
    padding=pad)`` with given offsets)."""
    n, c, h, w = x.shape
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    rows = (torch.arange(h, device=dev)[None, :] + shifts[:, :1])[:, None, :, None]
    cols = (torch.arange(w, device=dev)[None, :] + shifts[:, 1:])[:, None, None, :]
    out = xp[
        torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols
    ]
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return out.contiguous(memory_format=fmt)


def epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """SGD's learning rate for ``epoch`` (0-based) under ``cfg.schedule``: constant,
    piecewise (times ``gamma`` at each milestone reached, as ``MultiStepLR``) or cosine from
    ``lr`` to 0 over ``max_epochs`` (``CosineAnnealingLR`` with ``T_max = max_epochs``)."""
    if cfg.schedule == "piecewise":
        return cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        return cfg.lr * (1 + math.cos(math.pi * epoch / cfg.max_epochs)) / 2
    return cfg.lr


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500, channels_last: bool = True
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (eval mode) on uint8 images ``x``."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        out = model(to_float(x[i : i + batch_size], channels_last))
        yb = y[i : i + batch_size]
        loss += F.cross_entropy(out.float(), yb, reduction="sum")
        correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return loss.item() / n, correct.item() / n


def compiled(fn: Callable, mode: str, device: torch.device, what: str = "the training step") -> Callable:
    """``fn`` through ``torch.compile`` when ``mode == "on"`` (:class:`Compiled`), else ``fn``."""
    return Compiled(fn, device, what) if mode == "on" else fn


class Compiled:
    """``fn`` through ``torch.compile``: with CUDA graphs on a GPU (``reduce-overhead``: a
    batch-32 step of a small CNN is launch-bound there; each call is one step, so it marks the
    step's beginning), inductor's default on a CPU. A new shape (an epoch's last, smaller
    batch) recompiles once, then dynamo generalises the changed dimension. If compiling fails
    on this process's first call, it says so in one line and runs ``fn`` eager from then on
    (the same results to float tolerance) rather than lose the run."""

    def __init__(self, fn: Callable, device: torch.device, what: str) -> None:
        self.fn, self.what, self.graphs = fn, what, device.type == "cuda"
        self.compiled: Callable | None = torch.compile(fn, mode="reduce-overhead" if self.graphs else "default")
        self.called = False

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            return self.fn(*args)
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        try:
            out = self.compiled(*args)
        except Exception as e:  # torch.compile's backends raise many kinds
            if self.called:
                raise
            log(
                f"torch.compile of {self.what} failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                "training eager (set train.compile = 'off' to skip compiling)"
            )
            self.compiled = None
            return self.fn(*args)
        self.called = True
        return out


def rng_scope(device: torch.device):
    """A fork of torch's global generators (the CPU's, and ``device``'s if it is a GPU): what
    is seeded or drawn inside it leaves the process's random state as it was."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


@contextmanager
def global_seed(seed: int, device: torch.device) -> Iterator[None]:
    """torch's global generators seeded with ``seed`` for the block and restored after it: what
    draws from them (dropout masks, which take no generator) is reproducible, and the process's
    random state is left as it was (no hidden state between jobs)."""
    with rng_scope(device):
        torch.manual_seed(seed)
        yield


@dataclass
class FitResult:
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    stopped_epoch: int
    steps: int = 0
    #: torch's CPU threads in each epoch (this study's share of the cores, :func:`fair_threads`),
    #: kept out of ``history`` so that history.csv keeps its columns
    threads: list[int] = field(default_factory=list)


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    *,
    seed: int,
    augment: bool = False,
    regime: Regime = Regime(),  # noqa: B008 - a frozen (immutable) default
    resume: dict[str, Any] | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    desc: str = "train",
    progress: bool = True,
    robust: Callable[[nn.Module], float] | None = None,
) -> FitResult:
    """Train ``model`` in place on uint8 NHWC images (already on the model's device).

    ``resume``: a state from ``on_epoch_end`` (tensors and plain values only), to continue
    an interrupted run. ``on_epoch_end(state)`` is called after every epoch with that
    state. Returns the best epoch's weights when ``cfg.restore_best``: the lowest validation
    loss, or, given ``robust`` (with ``cfg.select = "val_robust"``, for an adversarially
    trained model), the highest ``robust(model)`` (robust accuracy on the validation images),
    which early stopping then watches too.
    ``regime``: class weights, re-sampling, adversarial training (:class:`Regime`).
    """
    run = _Run(model, cfg, train[0].device, resume)
    for epoch in range(run.start_epoch, cfg.max_epochs):
        if run.stopper.should_stop:
            break
        run.threads.append(fair_threads())  # fixed for the epoch; recorded beside its history
        t0 = time.perf_counter()
        if cfg.optimizer == "sgd":
            for g in run.opt.param_groups:
                g["lr"] = epoch_lr(cfg, epoch)
        loss_sum, correct, n = run.epoch(train, epoch, seed, augment, regime, f"{desc} epoch {epoch + 1}", progress)
        with torch.autocast(run.device.type, dtype=run.amp, enabled=run.amp is not None):
            val_loss, val_acc = evaluate_loss(model, *val, channels_last=cfg.channels_last)
        record = {
            "epoch": epoch + 1,
            "loss": loss_sum.item() / n,
            "accuracy": correct.item() / n,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": run.opt.param_groups[0]["lr"] if cfg.optimizer == "sgd" else keras_lr(cfg.lr, cfg.decay, run.step),
        }
        watched = val_loss
        if robust is not None:
            record["val_robust_accuracy"] = robust(model)
            watched = -record["val_robust_accuracy"]
        run.history.append({**record, "seconds": time.perf_counter() - t0})
        if run.stopper.step(watched, epoch + 1):
            run.best_state = copy.deepcopy(model.state_dict())
        if on_epoch_end is not None:
            on_epoch_end(run.state(epoch + 1))
    final = run.best_state if cfg.restore_best else model.state_dict()
    model.load_state_dict(final)
    stopped = int(run.history[-1]["epoch"]) if run.history else 0  # an int (epoch + 1) in a dict of floats
    return FitResult(final, run.history, run.stopper.best_epoch, stopped, run.step, run.threads)


class _Run:
    """One model's training state between epochs: optimiser, early stopping, history, the
    best weights and the step count (Keras ``iterations``), from scratch or a checkpoint."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, device: torch.device, resume: dict[str, Any] | None) -> None:
        self.model, self.cfg, self.device = model, cfg, device
        self.amp = autocast_dtype(cfg.precision, device)
        self.forward = compiled(model, cfg.compile, device)
        self.opt = make_optimizer(model, cfg)
        self.stopper = EarlyStopping(cfg.min_delta, cfg.patience)
        self.history: list[dict[str, float]] = []
        self.threads: list[int] = []
        self.best_state = copy.deepcopy(model.state_dict())
        self.start_epoch, self.step = 0, 0
        if resume is not None:
            model.load_state_dict(resume["model"])
            self.opt.load_state_dict(resume["optimizer"])
            self.stopper.load_state_dict(resume["early_stopping"])
            self.best_state = resume["best_state"]
            self.history = list(resume["history"])
            self.threads = list(resume.get("threads", []))  # checkpoints before it have none
            self.start_epoch, self.step = int(resume["epoch"]), int(resume["step"])

    def state(self, epoch: int) -> dict[str, Any]:
        """What a checkpoint holds after ``epoch`` (tensors and plain values only)."""
        return {
            "epoch": epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "early_stopping": self.stopper.state_dict(),
            "best_state": self.best_state,
            "history": self.history,
            "threads": self.threads,
        }

    def epoch(self, train, epoch: int, seed: int, *args: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        """One pass over the training set (``_epoch``), with torch's global generators (the
        dropout masks, PGD's random starts) seeded from (seed, epoch) for it alone."""
        with global_seed(derive_seed(seed, "dropout", epoch), self.device):
            return self._epoch(train, epoch, seed, *args)

    def _epoch(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        epoch: int,
        seed: int,
        augment: bool,
        regime: Regime,
        desc: str,
        progress: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """One pass over the training set (its order, flips and dropout masks from seeds
        derived from (seed, epoch)); returns the summed loss, the correct count and n."""
        from tqdm.auto import tqdm

        x_tr, y_tr = train
        cfg, model, device = self.cfg, self.model, self.device
        model.train()
        gen = torch.Generator().manual_seed(derive_seed(seed, "shuffle", epoch))
        perm = epoch_order(y_tr, regime, gen).to(device)
        n = len(perm)
        flips = (torch.rand(n, generator=gen) < 0.5).to(device) if augment else None
        pad = crop_padding(cfg)
        shifts = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen).to(device) if pad else None
        weight = torch.tensor(regime.class_weight, device=device) if regime.class_weight else None
        adjust = torch.tensor(regime.logit_adjust, device=device) if regime.logit_adjust else None
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        bar = tqdm(
            total=n, desc=f"{desc}/{cfg.max_epochs}", unit="img", leave=False, disable=not progress, mininterval=0.5
        )
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            xb = to_float(x_tr[idx], cfg.channels_last)
            if flips is not None:
                f = flips[i : i + cfg.batch_size]
                xb = torch.where(f[:, None, None, None], xb.flip(3), xb)
            if shifts is not None:
                xb = random_crop(xb, shifts[i : i + cfg.batch_size], pad)
            yb = y_tr[idx]
            x_adv = None
            if regime.images is not None:
                with torch.autocast(device.type, dtype=self.amp, enabled=self.amp is not None):
                    x_adv = regime.images.craft(model, xb, yb, gen)  # restores train mode
                if not regime.images.keeps_clean:  # the batch itself is replaced; TRADES keeps both
                    xb, x_adv = x_adv, None
            loss, out = self.update(xb, yb, weight, adjust, x_adv, regime.loss)
            loss_sum += loss.detach() * len(idx)
            correct += (out.argmax(1) == yb).sum()
            bar.update(len(idx))
        bar.close()
        return loss_sum, correct, n

    def update(
        self,
        xb: torch.Tensor,
        yb: torch.Tensor,
        weight: torch.Tensor | None,
        adjust: torch.Tensor | None = None,
        x_adv: torch.Tensor | None = None,
        loss_fn: Loss | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step at this iteration's learning rate on the regime's loss
        (``loss_fn``, cross-entropy by default; ``weight`` and ``adjust``: the class weights and
        logit offsets the regime declares; ``x_adv``: training images the loss sees beside the
        batch, TRADES' neighbours)."""
        if self.cfg.optimizer == "rmsprop_keras":
            for g in self.opt.param_groups:
                g["lr"] = keras_lr(self.cfg.lr, self.cfg.decay, self.step)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            out = self.forward(xb)
            out_adv = self.forward(x_adv) if x_adv is not None else None
        loss = (loss_fn or CROSS_ENTROPY)(out.float(), yb, weight, adjust, None if out_adv is None else out_adv.float())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return loss, out
