"""Training as in the paper: random augmented tiles, weighted cross-entropy, SGD momentum 0.99.

``train(run_config, out_dir)`` is the whole loop; the ``unetkit train`` command
and the demo call it. Everything random is keyed: the k-th training sample is
drawn with ``np.random.default_rng([seed, k])``, dropout uses the torch RNG
whose state is checkpointed, so a run resumed from ``last.pt`` continues
bit-for-bit as if it had never stopped (on the same machine and thread count;
on CUDA only as far as cuDNN picks the same kernels, which autotuning does not
promise).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import geometry
from .augment import AugmentConfig, augment
from .checkpoint import load_checkpoint, save_checkpoint
from .config import save_config
from .devices import autocast, cuda_speed, resolve_device
from .data import DataConfig, TrainingPair, load_pairs_from_paths
from .inference import predict
from .io import atomic_path
from .losses import weighted_cross_entropy
from .model import ModelConfig, UNet
from .weights import WeightMapConfig

__all__ = ["TrainConfig", "RunConfig", "TrainingDiverged", "TileDataset", "train", "validate", "train_on_pairs"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping.

    ``tile`` is the INPUT tile size (572 in the paper); with valid padding the
    loss is computed on the central output window (388 for 572). The paper's
    default is one large tile per step with SGD and momentum 0.99.

    ``amp`` runs forward and loss under bfloat16 autocast on CUDA (weights,
    gradients and optimiser state stay float32; ignored on CPU).
    ``channels_last`` trains in that memory format (pays on CUDA with
    ``amp``; slower than the default on CPU, measured in ``benchmarks/``).
    ``grad_clip`` > 0 rescales the gradients so that their global L2 norm
    is at most that value before each optimiser step (0: off); the largest
    norm before clipping since the last log record is logged as ``grad_norm``.
    """

    steps: int = 2000
    tile: int = 572
    batch_size: int = 1
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.99
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    val_every: int = 200
    checkpoint_every: int = 200
    log_every: int = 10
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    grad_clip: float = 0.0
    threads: int = 0
    best_metric: str = "loss"
    warping: bool = False
    plots: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"train.optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.schedule not in ("constant", "cosine", "poly"):
            raise ValueError(f"train.schedule must be 'constant', 'cosine' or 'poly', got {self.schedule!r}")
        for name in ("steps", "batch_size", "val_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if not self.grad_clip >= 0:
            raise ValueError(f"train.grad_clip must be >= 0 (0 = off), got {self.grad_clip}")


@dataclass(frozen=True)
class RunConfig:
    """One training run: a section per component, as in the config file."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    weights: WeightMapConfig = field(default_factory=WeightMapConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class TileDataset(torch.utils.data.Dataset):
    """The k-th item is an augmented random tile drawn with ``np.random.default_rng([seed, k])``.

    Items: image (C, T, T) float32, classes (O, O) int64, weights (O, O) float32,
    where T is the input tile and O the model's output size for it.
    """

    def __init__(self, pairs: list[TrainingPair], config: AugmentConfig, tile: tuple[int, int],
                 label_shape: tuple[int, int], seed: int):
        if not pairs:
            raise ValueError("no training pairs")
        self.pairs, self.config, self.tile, self.label_shape, self.seed = pairs, config, tile, label_shape, seed

    def __len__(self) -> int:  # indices are unbounded; the sampler decides
        return 2**62

    def __getitem__(self, k: int):
        rng = np.random.default_rng([self.seed, int(k)])
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        image, classes, weights = augment(rng, self.config, pair.image, pair.classes, pair.weights,
                                          out_shape=self.tile, label_shape=self.label_shape)
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                torch.from_numpy(np.ascontiguousarray(classes, dtype=np.int64)),
                torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)))


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = step / max(cfg.steps, 1)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * frac))
    if cfg.schedule == "poly":
        return cfg.lr * (1 - frac) ** 0.9
    return cfg.lr


def validate(model: UNet, pairs: list[TrainingPair], *, device=None, warping: bool = False) -> dict:
    """Validation loss and segmentation metrics on whole images (overlap-tile inference).

    Returns a dict with ``loss`` (weighted cross-entropy), ``accuracy`` and, for
    2-class models, the ISBI metrics of :func:`unetkit.metrics.evaluate_probabilities`
    at t = 0.5 (``pixel_error``, ``rand_error``, ``iou``, ``dice``, ``v_rand``,
    ``v_info``; ``warping_error`` when ``warping``).
    """
    from . import metrics

    losses, correct, total, probs = [], 0, 0, []
    for pair in pairs:
        p = predict(model, pair.image, device=device, normalize_input=False)
        logp = np.log(np.clip(np.take_along_axis(p, pair.classes[None], 0)[0], 1e-12, None))
        counted = max(int((pair.weights > 0).sum()), 1)
        losses.append(float(-(pair.weights * logp).sum() / counted))
        pred = p.argmax(0)
        mask = pair.weights > 0
        correct += int((pred == pair.classes)[mask].sum())
        total += int(mask.sum())
        probs.append(p)
    result = {"loss": float(np.mean(losses)), "accuracy": correct / max(total, 1)}
    if model.config.num_classes == 2:
        prob_fg = np.stack([p[1] for p in probs])
        gt = np.stack([pair.classes for pair in pairs])
        m = metrics.evaluate_probabilities(prob_fg, gt, thresholds=[0.5], warping=warping)
        for key in ("pixel_error", "rand_error", "iou", "dice", "v_rand", "v_info") + (("warping_error",) if warping else ()):
            result[key] = float(m["at_0.5"][key])
    return result


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _lower_is_better(metric: str) -> bool:
    return metric in ("loss", "pixel_error", "rand_error", "warping_error")


def train_on_pairs(
    run: RunConfig,
    train_pairs: list[TrainingPair],
    val_pairs: list[TrainingPair],
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    log=print,
) -> dict:
    """Train ``run.model`` on prepared pairs; write checkpoints, logs and plots to ``out_dir``.

    Files: ``config.json`` (resolved config), ``last.pt`` (with optimiser and
    RNG state, for ``resume``), ``best.pt`` (best validation ``train.best_metric``;
    without validation the last one), ``metrics.jsonl`` (one record per log or
    validation), ``curves.png`` and ``samples.png`` (with ``train.plots``).

    Returns a summary dict (steps, wall time, last validation, best value).
    """
    cfg = run.train
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    mcfg = run.model
    tile = (cfg.tile, cfg.tile)
    geometry.check_input_shape(tile, depth=mcfg.depth, padding=mcfg.padding)
    label_shape = tuple(geometry.output_size(t, depth=mcfg.depth, padding=mcfg.padding) for t in tile)
    in_ch = train_pairs[0].image.shape[0]
    if in_ch != mcfg.in_channels:
        raise ValueError(f"model.in_channels = {mcfg.in_channels} but the images have {in_ch} channels")

    torch.manual_seed(cfg.seed)
    model = UNet.from_config(mcfg).to(device)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    params = model.parameters()
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    start_step, best_value, history, wall_before = 0, None, [], 0.0
    metrics_path = out / "metrics.jsonl"
    if resume:
        ckpt = load_checkpoint(out / "last.pt", map_location=device)
        if ckpt["config"] != mcfg.to_dict():
            raise ValueError(f"{out / 'last.pt'} was trained with another model config; cannot resume")
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"])
        start_step = int(ckpt["step"])
        best_value = ckpt["training"].get("best_value")
        wall_before = float(ckpt["training"].get("wall_time_s", 0.0))
        # keep the log consistent with the checkpoint: drop records written after it
        if metrics_path.exists():
            history = [json.loads(l) for l in metrics_path.read_text().splitlines() if l.strip()]
            history = [r for r in history if r["step"] <= start_step]
            with atomic_path(metrics_path) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
        log(f"resumed from {out / 'last.pt'} at step {start_step}")
    else:
        if metrics_path.exists():
            metrics_path.unlink()
    save_config(run, out / "config.json")

    dataset = TileDataset(train_pairs, run.augment, tile, label_shape, cfg.seed)
    indices = range(start_step * cfg.batch_size, cfg.steps * cfg.batch_size)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=indices, num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global RNG untouched
        persistent_workers=False, pin_memory=device.type == "cuda",
    )

    def training_meta(step, wall, last_val=None):
        return {"step": step, "steps": cfg.steps, "wall_time_s": wall, "best_metric": cfg.best_metric,
                "best_value": best_value, "validation": last_val, "tile": cfg.tile, "batch_size": cfg.batch_size,
                "train_images": [p.name for p in train_pairs], "val_images": [p.name for p in val_pairs],
                "torch": str(torch.__version__), "device": str(device)}

    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
    t0 = time.perf_counter()
    data_time = compute_time = 0.0
    last_val = None
    step = start_step
    running, grad_norms = [], []
    model.train()
    t_data = time.perf_counter()
    speed = contextlib.ExitStack()
    speed.enter_context(cuda_speed(device))  # cuDNN autotuning for this run only; restored in finally
    try:
        for x, y, w in loader:
            x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
            y, w = y.to(device, non_blocking=True), w.to(device, non_blocking=True)
            t_comp = time.perf_counter()
            data_time += t_comp - t_data
            lr = _lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            with autocast(device, cfg.amp):
                logits = model(x)
            loss = weighted_cross_entropy(logits.float(), y, w)
            if not torch.isfinite(loss):
                kept = (f"the last good checkpoint is {out / 'last.pt'}" if (out / "last.pt").is_file()
                        else "no checkpoint was written yet")
                raise TrainingDiverged(f"loss became {loss.item()} at step {step}; lower train.lr (now {lr:g}); {kept}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)))
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            compute_time += time.perf_counter() - t_comp
            step += 1
            running.append(loss.item())
            wall = wall_before + time.perf_counter() - t0
            if step % cfg.log_every == 0 or step == cfg.steps:
                rec = {"step": step, "loss": float(np.mean(running)), "lr": lr, "wall_time_s": wall,
                       "tiles_per_s": step * cfg.batch_size / max(wall, 1e-9),
                       "data_s_per_step": data_time / max(step - start_step, 1),
                       "compute_s_per_step": compute_time / max(step - start_step, 1)}
                if grad_norms:
                    rec["grad_norm"] = float(np.max(grad_norms))  # the largest since the last record
                running, grad_norms = [], []
                history.append(rec)
                _append_jsonl(metrics_path, rec)
                if bar is not None:
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", tiles_s=f"{rec['tiles_per_s']:.2f}")
            if bar is not None:
                bar.update(1)
            if val_pairs and (step % cfg.val_every == 0 or step == cfg.steps):
                with cuda_speed(device, benchmark=False):  # whole images: no search per new shape
                    last_val = validate(model, val_pairs, device=device, warping=cfg.warping)
                model.train()
                rec = {"step": step, "val": last_val, "wall_time_s": wall}
                history.append(rec)
                _append_jsonl(metrics_path, rec)
                value = last_val.get(cfg.best_metric)
                if value is None:
                    raise ValueError(f"train.best_metric {cfg.best_metric!r} is not one of {sorted(last_val)}")
                better = best_value is None or (value < best_value if _lower_is_better(cfg.best_metric) else value > best_value)
                if better:
                    best_value = value
                    save_checkpoint(out / "best.pt", model, training=training_meta(step, wall, last_val))
                log(f"step {step}: " + ", ".join(f"val {k} {v:.4f}" for k, v in last_val.items()))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(out / "last.pt", model, training=training_meta(step, wall, last_val),
                                extra={"optimizer": opt.state_dict(), "rng": _rng_state(), "step": step})
                if not val_pairs:
                    save_checkpoint(out / "best.pt", model, training=training_meta(step, wall, last_val))
            t_data = time.perf_counter()
    finally:
        speed.close()
        if bar is not None:
            bar.close()
    wall = wall_before + time.perf_counter() - t0
    if cfg.plots:
        from .plots import plot_training_curves, plot_samples

        plot_training_curves(history, out / "curves.png")
        if val_pairs:
            with cuda_speed(device, benchmark=False):
                plot_samples(model, val_pairs[:3], out / "samples.png", device=device)
    return {"steps": step, "wall_time_s": wall, "validation": last_val, "best_value": best_value,
            "data_s_per_step": data_time / max(step - start_step, 1),
            "compute_s_per_step": compute_time / max(step - start_step, 1), "model": model}


def train(run: RunConfig, out_dir: str | os.PathLike, *, resume: bool = False, base: Path | None = None, log=print) -> dict:
    """Load the data described by ``run.data`` and train (see :func:`train_on_pairs`)."""
    kwargs = dict(num_classes=run.model.num_classes, in_channels=run.model.in_channels,
                  normalization=run.model.normalization, weight_config=run.weights)
    train_pairs = load_pairs_from_paths(run.data, base=base, **kwargs)
    val_pairs = load_pairs_from_paths(run.data, validation=True, base=base, **kwargs)
    log(f"{len(train_pairs)} training and {len(val_pairs)} validation images")
    return train_on_pairs(run, train_pairs, val_pairs, out_dir, resume=resume, log=log)
