"""The training loop, as a few small steps: prepare, set up (or resume), step, log, validate, checkpoint.

Everything random is keyed: the k-th training sample is drawn with
``np.random.default_rng([seed, k])``; initialisation and dropout use torch's
RNG, seeded inside a forked RNG scope (the caller's global RNG is left as it
was) and checkpointed, so a run resumed from ``last.pt`` continues bit-for-bit
as if it had never stopped (on the same machine and thread count; on CUDA only
as far as cuDNN picks the same kernels, which autotuning does not promise).

A checkpoint is written only for weights that are finite and give a finite
output: a run that diverges stops with :class:`TrainingDiverged` and leaves
the last good ``last.pt`` in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import geometry
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import save_config
from ..data import DataConfig, TrainingPair, load_pairs_from_paths
from ..devices import autocast, cuda_speed, resolve_device
from ..io import atomic_path, check_output_dir, remove_stale_temps
from ..losses import segmentation_loss
from ..model import ModelConfig, UNet
from .config import (LOWER_IS_BETTER, RunConfig, TrainConfig, TrainingDiverged, parse_duration, schedule_passes,
                     scheduled_dropout)
from .ddp import SINGLE, GlobalIndexSampler, Ranks, ddp_session
from .ema import WeightAverage
from .dataset import TileDataset
from .optim import lr_at, make_optimizer
from .validate import predict_pairs, validation_metrics

__all__ = ["TrainResult", "TrainCallbacks", "train_on_pairs", "train"]

_log = logging.getLogger("unetkit.train")
_UNCALIBRATED = 2**31 - 1  # train.steps of a budget run before its step time is measured


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reports (the checkpoints and logs are in its folder)."""

    steps: int
    wall_time_s: float
    validation: dict | None
    best_value: float | None
    data_s_per_step: float
    compute_s_per_step: float
    model: UNet = field(repr=False)
    out_dir: Path = Path(".")


@dataclass(frozen=True)
class TrainCallbacks:
    """Hooks for a front end (the napari plugin): see a run as it goes, stop it at any step.

    ``on_record(record)`` receives every log and validation record (the dicts
    of ``metrics.jsonl``); ``should_stop()`` is asked after every step: True
    ends the run there, with ``last.pt`` (and, without validation, ``best.pt``)
    written for that step.
    """

    on_record: object = None
    should_stop: object = None


@dataclass
class _State:
    """The mutable state of one run."""

    run: RunConfig
    out: Path
    device: torch.device
    model: UNet
    opt: torch.optim.Optimizer
    train_names: list[str]
    val_names: list[str]
    step: int = 0
    start_step: int = 0
    best_value: float | None = None
    history: list = field(default_factory=list)
    wall_before: float = 0.0
    t0: float = 0.0
    data_time: float = 0.0
    compute_time: float = 0.0
    last_val: dict | None = None
    val_probs: list = field(default_factory=list)
    running: list = field(default_factory=list)
    grad_norms: list = field(default_factory=list)
    ema: WeightAverage | None = None
    ranks: Ranks = SINGLE
    callbacks: TrainCallbacks = TrainCallbacks()
    train_model: torch.nn.Module | None = None  # the DDP wrapper under torchrun, else the model
    calibrated: bool = True  # False while a budget run has not yet set train.steps
    recheck: tuple[int, float, int] | None = None  # (at step, since wall s, since step): re-estimate of a budget run
    window_shape: tuple[int, int] = (0, 0)  # one tile's loss window
    image_shapes: list = field(default_factory=list)  # the training images' shapes
    dropout: float | None = None  # the dropout the network trains with now (train.dropout_min_passes decides)

    @property
    def eval_model(self) -> UNet:
        """The weights that are validated, saved and predicted with: the average when ``train.ema`` > 0."""
        return self.ema.model if self.ema is not None else self.model

    @property
    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    @property
    def metrics_path(self) -> Path:
        return self.out / "metrics.jsonl"

    def meta(self) -> dict:
        cfg = self.run.train
        return {"step": self.step, "steps": cfg.steps, "wall_time_s": self.wall, "best_metric": cfg.best_metric,
                "best_value": self.best_value, "validation": self.last_val, "tile": cfg.tile,
                "batch_size": cfg.batch_size, "train_images": self.train_names, "val_images": self.val_names,
                "torch": str(torch.__version__), "device": str(self.device), "dropout": self.dropout,
                "passes": self.passes, "bf16": cfg.uses_bf16(self.device),
                "channels_last": cfg.uses_channels_last(self.device)}

    @property
    def passes(self) -> float | None:
        """How many times the schedule shows each training pixel; None while a budget run's length is unknown."""
        cfg = self.run.train
        if not self.calibrated:
            return None
        return schedule_passes(cfg.steps, self.ranks.world * cfg.batch_size, self.window_shape, self.image_shapes)

    def record(self, rec: dict) -> None:
        self.history.append(rec)
        if self.callbacks.on_record is not None:
            self.callbacks.on_record(rec)
        if not self.ranks.main:
            return
        with open(self.metrics_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


# ----------------------------------------------------------------------------- preparation
def _recorded_run(run: RunConfig, pairs: list[TrainingPair]) -> RunConfig:
    """The run config as it really trains: the pairs' weight map, their normalisation checked against the model."""
    weights = {p.weight_config for p in pairs}
    norms = {p.normalization for p in pairs}
    if len(weights) > 1 or len(norms) > 1:
        raise ValueError("the training and validation pairs were made with different weight or normalisation "
                         "configs; make them all with the same ones")
    (norm,) = norms
    if norm != run.model.normalization:
        raise ValueError(f"the pairs were normalised with {norm} but model.normalization is "
                         f"{run.model.normalization}; prediction would normalise differently")
    return replace(run, weights=next(iter(weights)))


def _check_run(run: RunConfig, train_pairs: list[TrainingPair], out: Path, resume: bool) -> tuple:
    """Every check that can fail before anything is written; returns (tile, label_shape)."""
    cfg, mcfg = run.train, run.model
    if not train_pairs:
        raise ValueError("no training pairs")
    tile = (cfg.tile, cfg.tile)
    try:
        geometry.check_input_shape(tile, depth=mcfg.depth, padding=mcfg.padding)
    except ValueError as exc:
        raise ValueError(f"train.tile: {exc}") from None
    label_shape = tuple(geometry.output_size(t, depth=mcfg.depth, padding=mcfg.padding) for t in tile)
    in_ch = train_pairs[0].image.shape[0]
    if in_ch != mcfg.in_channels:
        raise ValueError(f"model.in_channels = {mcfg.in_channels} but the images have {in_ch} channels")
    check_output_dir(out)
    if resume and not (out / "last.pt").is_file():
        raise ValueError(f"{out / 'last.pt'}: no checkpoint to resume from")
    return tile, label_shape


def _setup(run: RunConfig, out: Path, device, train_pairs, val_pairs, resume: bool, log, ranks: Ranks,
           label_shape: tuple[int, int]) -> _State:
    """Model and optimiser, fresh (seeded) or restored from ``out/last.pt``."""
    cfg = run.train
    torch.manual_seed(cfg.seed)  # inside the forked RNG scope of train_on_pairs
    model = UNet.from_config(run.model).to(device)
    model.to(memory_format=torch.channels_last if cfg.uses_channels_last(device) else torch.contiguous_format)
    state = _State(run=run, out=out, device=device, model=model, opt=make_optimizer(model.parameters(), cfg),
                   train_names=[p.name for p in train_pairs], val_names=[p.name for p in val_pairs],
                   ema=WeightAverage(model, cfg.ema) if cfg.ema > 0 else None, calibrated=not cfg.budget,
                   ranks=ranks, train_model=model, window_shape=label_shape,
                   image_shapes=[p.image.shape for p in train_pairs])
    if ranks.active:  # the same initial weights everywhere, then a dropout stream of its own per rank
        torch.manual_seed(cfg.seed + 1_000_003 * ranks.rank)
        state.train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if resume:
        _resume(state, log)
    elif cfg.init_from:
        _init_from(state, Path(cfg.init_from), log)
    if not resume and state.metrics_path.exists() and ranks.main:
        state.metrics_path.unlink()
    if not state.calibrated:  # until the budget is calibrated the schedule runs as if the run were endless
        state.run = replace(state.run, train=replace(state.run.train, steps=_UNCALIBRATED))
    _set_dropout(state, log)
    return state


def _set_dropout(state: _State, log, *, say: bool = False) -> None:
    """Dropout on or off by the length of the schedule (:func:`~unetkit.train.config.scheduled_dropout`); said
    when it changes (or ``say``) once the step count is known.

    Off is ``p = 0`` on the network's dropout layers: the same values and the
    same random stream as a network built without dropout.
    """
    p = scheduled_dropout(state.run, state.passes)
    changed = state.dropout != p
    state.dropout = p
    if changed:
        for module in state.model.modules():
            if isinstance(module, torch.nn.Dropout2d):
                module.p = p
    if state.run.dropout_by_schedule and state.calibrated and (changed or say):
        log(f"dropout {'on' if p > 0 else 'off'} ({p:g}): the schedule shows each training pixel "
            f"{state.passes:.0f} times ({'>=' if p > 0 else '<'} train.dropout_min_passes = "
            f"{state.run.train.dropout_min_passes:g})")


def _differing(mine: dict, theirs: dict) -> list[str]:
    """The keys whose values differ between two config dicts (a key missing on one side differs)."""
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


def _init_from(state: _State, path: Path, log) -> None:
    """Start from a checkpoint's weights (fine-tuning): same architecture, fresh optimiser and schedule."""
    ckpt = load_checkpoint(path, map_location=state.device)
    theirs = ModelConfig.from_dict(ckpt["config"]).network_kwargs()
    # dropout has no weights: a fine-tuning run picks its own
    differ = [k for k in _differing(state.run.model.network_kwargs(), theirs) if k != "dropout"]
    if differ:
        raise ValueError(f"train.init_from {path}: another architecture ({', '.join(differ)} differ)")
    state.model.load_state_dict(ckpt["state_dict"])
    if state.ema is not None:
        state.ema.load_state_dict(state.model.state_dict())
    log(f"starting from the weights of {path}")


def _resume(state: _State, log) -> None:
    ckpt = load_checkpoint(state.out / "last.pt", map_location=state.device)
    differ = _differing(state.run.model.to_dict(), ckpt["config"])
    if differ:
        said = ", ".join(f"model.{k} = {ckpt['config'].get(k)!r}" for k in differ)
        raise ValueError(f"{state.out / 'last.pt'} was trained with another model config ({said}); cannot resume")
    state.model.load_state_dict(ckpt.get("raw_state_dict", ckpt["state_dict"]))
    if state.ema is not None:
        state.ema.load_state_dict(ckpt["state_dict"] if "raw_state_dict" in ckpt else state.model.state_dict())
    state.opt.load_state_dict(ckpt["optimizer"])
    rng = ckpt["rng"]
    per_rank = rng.get("ranks")
    if per_rank is not None and len(per_rank) == state.ranks.world:  # a DDP run: each rank's own stream
        rng = per_rank[state.ranks.rank]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    state.step = state.start_step = int(ckpt["step"])
    state.best_value = ckpt["training"].get("best_value")
    if state.run.train.budget and ckpt["training"].get("budget_calibrated"):  # the budget was spent on this run
        state.run = replace(state.run, train=replace(state.run.train, steps=int(ckpt["training"]["steps"])))
        state.calibrated = True
    state.wall_before = float(ckpt["training"].get("wall_time_s", 0.0))
    if state.metrics_path.exists() and state.ranks.main:  # keep the log consistent with the checkpoint
        kept = [r for r in map(json.loads, filter(str.strip, state.metrics_path.read_text().splitlines()))
                if r["step"] <= state.start_step]
        state.history = kept
        with atomic_path(state.metrics_path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    log(f"resumed from {state.out / 'last.pt'} at step {state.start_step}")


# ----------------------------------------------------------------------------- one step
def training_loss(cfg: TrainConfig, logits: torch.Tensor, target: torch.Tensor,
                  weights: torch.Tensor | None) -> torch.Tensor:
    """The loss that ``cfg`` (``loss``, ``dice_weight``, ``cldice_weight``, ``cldice_class``) trains with:
    logits (B, C, H, W) float, target (B, H, W) int64, weights (B, H, W) float or None; a scalar."""
    return segmentation_loss(logits, target, weights, kind=cfg.loss, dice_weight=cfg.dice_weight,
                             cldice_weight=cfg.cldice_weight, cldice_class=cfg.cldice_class)


def _train_step(state: _State, x, y, w) -> tuple[torch.Tensor, float]:
    """Forward, loss, backward and update of one batch; raises before the update if anything is not finite.

    Returns the loss and the learning rate of the step.
    """
    cfg, model, opt = state.run.train, state.model, state.opt
    lr = lr_at(state.step, cfg)
    for group in opt.param_groups:
        group["lr"] = lr
    with autocast(state.device, cfg.amp):
        logits = state.train_model(x)
    loss = training_loss(cfg, logits.float(), y, w)
    if not state.ranks.all_true(bool(torch.isfinite(loss))):
        _diverged(state, f"loss became {loss.item()} at step {state.step}; lower train.lr (now {lr:g})")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    if not torch.isfinite(norm):
        _diverged(state, f"gradients became {norm.item()} at step {state.step}; lower train.lr (now {lr:g})")
    if cfg.grad_clip > 0:
        state.grad_norms.append(float(norm))
    opt.step()
    if state.ema is not None:
        state.ema.update(model, state.step)
    state.step += 1
    return loss, lr


def _diverged(state: _State, what: str):
    kept = (f"the last good checkpoint is {state.out / 'last.pt'}" if (state.out / "last.pt").is_file()
            else "no checkpoint was written yet")
    raise TrainingDiverged(f"{what}; {kept}")


def _sane(state: _State, x) -> bool:
    """Whether the weights (and the average) are finite and give a finite output on ``x`` (eval mode, no RNG)."""
    models = [state.model] + ([state.ema.model] if state.ema is not None else [])
    if not all(torch.isfinite(p).all() for m in models for p in m.parameters()):
        return False
    model = state.eval_model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(state.device, state.run.train.amp):
            return bool(torch.isfinite(model(x[:1])).all())
    finally:
        model.train(was_training)


# ----------------------------------------------------------------------------- bookkeeping
def _log_step(state: _State, lr: float, bar) -> None:
    done = max(state.step - state.start_step, 1)
    rec = {"step": state.step, "loss": float(np.mean(state.running)), "lr": lr, "wall_time_s": state.wall,
           "tiles_per_s": state.step * state.run.train.batch_size / max(state.wall, 1e-9),
           "data_s_per_step": state.data_time / done, "compute_s_per_step": state.compute_time / done}
    if state.grad_norms:
        rec["grad_norm"] = float(np.max(state.grad_norms))  # the largest since the last record
    state.running, state.grad_norms = [], []
    state.record(rec)
    if bar is not None:
        bar.set_postfix(loss=f"{rec['loss']:.4f}", tiles_s=f"{rec['tiles_per_s']:.2f}")


def _validate(state: _State, val_pairs: list[TrainingPair], x, log) -> None:
    """Validate, log, and keep ``best.pt`` when the chosen metric improved (rank 0 only under DDP)."""
    cfg = state.run.train
    if not state.ranks.main:
        return
    with cuda_speed(state.device, benchmark=False):  # whole images: no autotuning search per new shape
        probs = predict_pairs(state.eval_model, val_pairs, device=state.device, tta=cfg.val_tta)
    state.model.train()
    state.last_val = validation_metrics(val_pairs, probs, warping=cfg.warping)
    state.val_probs = probs[:3]
    state.record({"step": state.step, "val": state.last_val, "wall_time_s": state.wall})
    value = state.last_val.get(cfg.best_metric)
    if value is None:
        raise ValueError(f"train.best_metric {cfg.best_metric!r} is not one of {sorted(state.last_val)}")
    if not np.isfinite(state.last_val["loss"]):
        _diverged(state, f"validation loss became {state.last_val['loss']} at step {state.step}")
    lower = cfg.best_metric in LOWER_IS_BETTER
    if state.best_value is None or (value < state.best_value if lower else value > state.best_value):
        state.best_value = value
        _save(state, "best.pt", x)
    log(f"step {state.step}: " + ", ".join(f"val {k} {v:.4f}" for k, v in state.last_val.items()))


def _save(state: _State, name: str, x, *, resumable: bool = False) -> None:
    if not _sane(state, x):  # the weights are the same on every rank: all stop together
        _diverged(state, f"the weights became non-finite (or give a non-finite output) at step {state.step}")
    rng = _rng_state()
    if resumable and state.ranks.active:
        rng = {**rng, "ranks": state.ranks.gather(rng)}
    if not state.ranks.main:
        return
    extra = None
    if resumable:
        extra = {"optimizer": state.opt.state_dict(), "rng": rng, "step": state.step}
        if state.ema is not None:  # the raw weights, to resume; state_dict holds the average
            extra["raw_state_dict"] = {k: v.detach().cpu() for k, v in state.model.state_dict().items()}
    meta = {**state.meta(), "budget_calibrated": bool(state.run.train.budget and state.calibrated)}
    save_checkpoint(state.out / name, state.eval_model, training=meta, extra=extra)


def _rng_state() -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _finish(state: _State, val_pairs: list[TrainingPair]) -> None:
    if state.run.train.plots and state.ranks.main:
        from ..plots import plot_samples, plot_training_curves

        plot_training_curves(state.history, state.out / "curves.png")
        if val_pairs and state.val_probs:
            plot_samples(val_pairs[: len(state.val_probs)], state.val_probs, state.out / "samples.png")


# ----------------------------------------------------------------------------- the loop
def _calibrate(state: _State, val_pairs, x, t_first: float, log, bar) -> None:
    """Set ``train.steps`` so that the run ends when ``train.budget`` is spent.

    The step time is the mean wall time (data and compute) of the steps since
    the second one; a validation is timed once here (it is recorded like any
    other) and spread over ``val_every`` steps.
    """
    cfg = state.run.train
    done = state.step - state.start_step - 1
    per_step = (time.perf_counter() - t_first) / max(done, 1)
    per_val = 0.0
    if val_pairs and state.ranks.main:
        t = time.perf_counter()
        _validate(state, val_pairs, x, log)
        per_val = time.perf_counter() - t
    left = parse_duration(cfg.budget) - state.wall
    steps = state.step + max(int(left / (per_step + per_val / cfg.val_every)), 0)
    _set_budget_steps(state, steps, bar)
    state.calibrated = True
    log(f"budget {cfg.budget}: {per_step:.2f} s per step" + (f" and {per_val:.1f} s per validation" if val_pairs else "")
        + f" -> {state.run.train.steps} steps")
    _set_dropout(state, log, say=True)


def _set_budget_steps(state: _State, steps: int, bar) -> None:
    """``train.steps`` = rank 0's ``steps``; the next re-estimate half-way through the steps left."""
    steps = state.ranks.broadcast_int(max(steps, state.step))  # rank 0 decides for all
    state.run = replace(state.run, train=replace(state.run.train, steps=steps))
    left = steps - state.step
    # Re-estimate while more than a tenth of the budget is left: the first steps' time (threads warming up, a
    # busy front end) can differ from the run's, and a budget should be spent, not under- or overrun.
    again = state.ranks.broadcast_int(int(left >= 4 and state.wall < 0.9 * parse_duration(state.run.train.budget)))
    state.recheck = (state.step + left // 2, state.wall, state.step) if again else None
    if state.ranks.main:
        save_config(state.run, state.out / "config.json")
    if bar is not None:
        bar.total = steps
        bar.refresh()


def _recalibrate(state: _State, log, bar) -> None:
    """Re-estimate the steps that fit the budget from the time per step since the last estimate (validations,
    checkpoints and logging included)."""
    _, wall, step = state.recheck
    per_step = (state.wall - wall) / max(state.step - step, 1)
    left = parse_duration(state.run.train.budget) - state.wall
    before = state.run.train.steps
    _set_budget_steps(state, state.step + max(int(left / per_step), 0), bar)
    if state.run.train.steps != before:
        log(f"budget {state.run.train.budget}: {per_step:.2f} s per step since step {step} -> "
            f"{state.run.train.steps} steps (was {before})")
        _set_dropout(state, log)


def _loop(state: _State, loader, val_pairs, log) -> None:
    cfg = state.run.train
    fmt = torch.channels_last if cfg.uses_channels_last(state.device) else torch.contiguous_format
    bar = None
    if cfg.progress and state.ranks.main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=state.start_step, desc="train", unit="step", dynamic_ncols=True)
    state.model.train()
    t_data = t_first = time.perf_counter()
    try:
        for x, y, w in loader:
            if state.step >= state.run.train.steps:
                break
            x = x.to(state.device, non_blocking=True).contiguous(memory_format=fmt)
            y, w = y.to(state.device, non_blocking=True), w.to(state.device, non_blocking=True)
            t_comp = time.perf_counter()
            state.data_time += t_comp - t_data
            loss, lr = _train_step(state, x, y, w)
            if state.device.type == "cuda":
                torch.cuda.synchronize()
            state.compute_time += time.perf_counter() - t_comp
            state.running.append(loss.item())
            if state.step == state.start_step + 1:
                t_first = time.perf_counter()  # the first step pays one-off costs; calibration starts after it
            if not state.calibrated and state.step - state.start_step >= cfg.calibration_steps:
                _calibrate(state, val_pairs, x, t_first, log, bar)
            elif state.recheck is not None and state.step >= state.recheck[0]:
                _recalibrate(state, log, bar)
            _after_step(state, val_pairs, x, lr, bar, log)
            if state.callbacks.should_stop is not None and state.callbacks.should_stop():
                _stop_here(state, val_pairs, x)
                break
            t_data = time.perf_counter()
    finally:
        if bar is not None:
            bar.close()


def _stop_here(state: _State, val_pairs, x) -> None:
    """Checkpoints of the step a front end stopped at (unless this step wrote them already)."""
    cfg = state.run.train
    if state.step % cfg.checkpoint_every and state.step != cfg.steps:
        _save(state, "last.pt", x, resumable=True)
        if not val_pairs:
            _save(state, "best.pt", x)


def _after_step(state: _State, val_pairs, x, lr: float, bar, log) -> None:
    """Log, validate and checkpoint when this step calls for it."""
    cfg = state.run.train
    last = state.step == cfg.steps
    if state.step % cfg.log_every == 0 or last:
        _log_step(state, lr, bar)
    if bar is not None:
        bar.update(1)
    if val_pairs and (state.step % cfg.val_every == 0 or last):
        _validate(state, val_pairs, x, log)
    if state.step % cfg.checkpoint_every == 0 or last:
        _save(state, "last.pt", x, resumable=True)
        if not val_pairs:
            _save(state, "best.pt", x)


@contextlib.contextmanager
def _scoped_threads(threads: int):
    """torch intra-op threads for the block, restored after (0: leave as is)."""
    before = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_on_pairs(run: RunConfig, train_pairs: list[TrainingPair], val_pairs: list[TrainingPair],
                   out_dir: str | os.PathLike, *, resume: bool = False, log=None,
                   callbacks: TrainCallbacks | None = None) -> TrainResult:
    """Train ``run.model`` on prepared pairs; write checkpoints, logs and plots to ``out_dir``.

    Files: ``config.json`` (the config that trained: the pairs' weight-map
    config, the model's normalisation; ``data`` left at its defaults, since
    the pairs did not come from ``run.data``: their names are in the
    checkpoints' training metadata), ``last.pt`` (with optimiser and RNG
    state, for ``resume``), ``best.pt`` (best validation ``train.best_metric``;
    without validation the last one), ``metrics.jsonl`` (one record per log or
    validation), ``curves.png`` and ``samples.png`` (with ``train.plots``).
    Every check runs before the folder is created; stale temporaries of
    killed runs in it are removed. ``log`` receives one-line messages
    (default: the ``unetkit.train`` logger). The caller's torch RNG and
    thread count are left as they were. ``callbacks``: see :class:`TrainCallbacks`.
    """
    return _fit(replace(run, data=DataConfig()), train_pairs, val_pairs, out_dir, resume=resume, log=log,
                callbacks=callbacks)


def _fit(run: RunConfig, train_pairs: list[TrainingPair], val_pairs: list[TrainingPair],
         out_dir: str | os.PathLike, *, resume: bool, log, callbacks: TrainCallbacks | None = None) -> TrainResult:
    """The run itself (:func:`train_on_pairs`); ``run`` is recorded as it is, after :func:`_recorded_run`."""
    out = Path(out_dir)
    run = _recorded_run(run, list(train_pairs) + list(val_pairs))
    tile, label_shape = _check_run(run, train_pairs, out, resume)
    device = resolve_device(run.train.device)
    with ddp_session(device.type) as ranks:
        if ranks.active and device.type == "cuda":
            device = torch.device("cuda", ranks.local_rank)
        log = (log or _log.info) if ranks.main else (lambda *a, **k: None)
        if ranks.main:
            out.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(out)
        state = _run_rng_scoped(run, train_pairs, val_pairs, out, resume, log, device, ranks, tile, label_shape,
                                callbacks or TrainCallbacks())
    done = max(state.step - state.start_step, 1)
    return TrainResult(steps=state.step, wall_time_s=state.wall, validation=state.last_val,
                       best_value=state.best_value, data_s_per_step=state.data_time / done,
                       compute_s_per_step=state.compute_time / done, model=state.model, out_dir=out)


def _run_rng_scoped(run, train_pairs, val_pairs, out, resume, log, device, ranks, tile, label_shape,
                    callbacks: TrainCallbacks) -> _State:
    """Set up and run the loop inside a forked torch RNG, scoped threads and cuDNN settings."""
    cfg = run.train
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), _scoped_threads(cfg.threads), cuda_speed(device):
        state = _setup(run, out, device, train_pairs, val_pairs, resume, log, ranks, label_shape)
        state.callbacks = callbacks
        log(f"training on {device}: " + ("bf16 autocast" if cfg.uses_bf16(device) else "float32")
            + (", channels-last" if cfg.uses_channels_last(device) else "")
            + (" (train.amp: this CPU has no bf16 instructions)" if cfg.amp and not cfg.uses_bf16(device) else ""))
        if ranks.main:
            save_config(state.run, out / "config.json")
        if ranks.active:  # every rank must be set up (and rank 0's folder exist) before the first step
            torch.distributed.barrier()
        dataset = TileDataset(train_pairs, run.augment, tile, label_shape, cfg.seed)
        sampler = GlobalIndexSampler(state.step, state.run.train.steps, cfg.batch_size, ranks)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
            generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=False,
            pin_memory=device.type == "cuda")
        state.t0 = time.perf_counter()
        _loop(state, loader, val_pairs, log)
        _finish(state, val_pairs)
    return state


def train(run: RunConfig, out_dir: str | os.PathLike, *, resume: bool = False, base: Path | None = None,
          log=None) -> TrainResult:
    """Load the data described by ``run.data`` (paths relative to ``base``) and train (:func:`train_on_pairs`)."""
    log = log or _log.info
    kwargs = dict(num_classes=run.model.num_classes, in_channels=run.model.in_channels,
                  normalization=run.model.normalization, weight_config=run.weights)
    train_pairs = load_pairs_from_paths(run.data, base=base, **kwargs)
    val_pairs = load_pairs_from_paths(run.data, validation=True, base=base, **kwargs)
    log(f"{len(train_pairs)} training and {len(val_pairs)} validation images")
    return _fit(run, train_pairs, val_pairs, out_dir, resume=resume, log=log)
