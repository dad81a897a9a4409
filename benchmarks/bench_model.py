"""Compute speed of the U-Net against the machine's limit, and the cost of the data pipeline.

Three parts, each a function ``f(quick) -> dict`` that ``benchmarks/run.py`` calls:

``limit``
    fp32 ``torch.mm`` of two n x n matrices, n = 2048 and 4096: the GFLOP/s a
    convolution-bound network can at best approach on this machine.
``model``
    One 572x572 forward pass (``torch.inference_mode``, eval) and one training
    step (forward, weighted cross-entropy, backward, SGD step) at widths
    (``base_features``) 16, 32 and 64, in the default (contiguous) layout and in
    channels_last, plus ``torch.compile`` for the forward pass (not with
    ``--quick``; its one-time compile cost is reported), and the forward pass
    exported to ONNX and run by ONNX Runtime. FLOPs are counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is 2 FLOPs);
    achieved GFLOP/s is divided by the limit.
``pipeline``
    Training steps at width 16 on 572 tiles drawn by ``unetkit.train.TileDataset``
    (augmentation of synthetic EM images from ``unetkit.synthetic``) through a
    ``DataLoader`` with ``num_workers`` 0 and 1, against compute alone on one
    fixed batch.

Compute times are the best of several calls (variants interleaved, so a busy
phase of a shared machine hits all of them alike; medians are kept in the
JSON); the pipeline reports medians of per-step times over rounds in which
the variants alternate.

Run: ``python benchmarks/bench_model.py [--quick] [--only limit,model,pipeline]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from machine import machine_info  # noqa: E402
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "model.json"
TILE = 572


# ---------------------------------------------------------------- shared helpers


def time_interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 1) -> dict[str, dict]:
    """Seconds per call of each function: best and median of ``reps`` calls, interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: {"s_best": min(ts), "s_median": float(np.median(ts)), "n": len(ts)} for name, ts in times.items()}


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


# ---------------------------------------------------------------- (a) the limit


def limit(quick: bool = False) -> dict:
    """fp32 matrix-multiply GFLOP/s at n = 2048 and 4096 (the best call of each)."""
    rows = []
    for n, reps in ((2048, 4 if quick else 8), (4096, 2 if quick else 4)):
        a, b = torch.randn(n, n), torch.randn(n, n)
        t = time_interleaved({"mm": lambda: torch.mm(a, b)}, reps)["mm"]
        flops = 2 * n**3
        rows.append({"size": n, **t, "gflops": flops / t["s_best"] / 1e9, "gflops_median": flops / t["s_median"] / 1e9})
    return {"rows": rows, "gflops": max(r["gflops"] for r in rows)}


# ---------------------------------------------------------------- (b) the model


def _model(width: int):
    from unetkit import UNet

    torch.manual_seed(0)
    return UNet(1, 2, base_features=width)


def _trainer(model, *, amp: bool = False) -> Callable[..., torch.Tensor]:
    """``step(x, y, w)``: forward, weighted cross-entropy, backward, SGD (momentum 0.99) step.

    ``amp``: the forward pass under ``unetkit.devices.autocast`` (bf16 where the CPU has bf16 instructions), the
    loss in float32, as ``train.amp`` trains.
    """
    from unetkit.devices import autocast
    from unetkit.losses import weighted_cross_entropy

    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.99)
    cpu = torch.device("cpu")

    def step(x, y, w):
        with autocast(cpu, amp):
            logits = model(x)
        loss = weighted_cross_entropy(logits.float(), y, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def model(quick: bool = False, widths=(16, 32, 64), limit_gflops: float | None = None) -> dict:
    """Forward and training-step GFLOP/s at each width: eager, channels_last, ONNX Runtime (, torch.compile);
    bf16 autocast (alone and with channels_last) where the CPU has bf16 instructions."""
    from unetkit.devices import native_bf16

    bf16 = native_bf16(torch.device("cpu"))
    cl = torch.channels_last
    x = torch.randn(1, 1, TILE, TILE)
    out = TILE - 184  # valid output of a depth-4 U-Net
    y = torch.randint(0, 2, (1, out, out))
    wmap = torch.ones(1, out, out)
    rows = []
    for width in widths:
        big = width >= 64
        reps = (1 if big else 2) if quick else (3 if big else 5)
        eager = _model(width).eval()
        chlast = _model(width).eval().to(memory_format=cl)
        x_cl = x.contiguous(memory_format=cl)
        fns = {"eager": lambda: eager(x), "channels_last": lambda: chlast(x_cl)}
        if bf16:
            fns["bf16"] = lambda: _bf16_forward(eager, x)
            fns["bf16 + channels_last"] = lambda: _bf16_forward(chlast, x_cl)
        status = {} if bf16 else {"bf16": "no bf16 instructions on this CPU (train.amp is a no-op)"}
        try:
            ort_run = _onnx_forward(eager, x)
            fns["onnxruntime"] = lambda: ort_run(x)
        except ImportError as err:
            status["onnxruntime"] = f"not installed ({err.name})"
        with torch.inference_mode():
            fwd_flops = count_flops(lambda: eager(x))
            times = time_interleaved(fns, reps)
            ref = eager(x)
            diffs = {name: float((torch.as_tensor(fn()) - ref).abs().max()) for name, fn in fns.items()}
        for name, t in times.items():
            rows.append({"what": "forward", "width": width, "variant": name, "flops": fwd_flops, **t,
                         "max_abs_diff_vs_eager": diffs[name]})
        for name, text in status.items():
            rows.append({"what": "forward", "width": width, "variant": name, "flops": fwd_flops, "status": text})
        if not quick:
            rows.append(_compiled_forward(width, x, fwd_flops, reps, ref))
        del eager, chlast, fns

        # training step: dropout on (train mode), SGD momentum as in the paper
        eager = _model(width).train()
        chlast = _model(width).train().to(memory_format=cl)
        train_e, train_c = _trainer(eager), _trainer(chlast)
        step_e = lambda: train_e(x, y, wmap)  # noqa: E731
        step_c = lambda: train_c(x_cl, y, wmap)  # noqa: E731
        steps = {"eager": step_e, "channels_last": step_c}
        if bf16:  # fresh copies: the same weights, an optimiser of their own
            bf16_e, bf16_c = _model(width).train(), _model(width).train().to(memory_format=cl)
            train_be, train_bc = _trainer(bf16_e, amp=True), _trainer(bf16_c, amp=True)
            steps["bf16"] = lambda: train_be(x, y, wmap)
            steps["bf16 + channels_last"] = lambda: train_bc(x_cl, y, wmap)
        train_flops = count_flops(step_e)  # also the warm-up of the eager step
        # --quick at width 64: one call each, channels_last without a warm-up call
        times = time_interleaved(steps, 1 if quick else max(2, reps - 1), warmup=0 if quick and big else 1)
        for name, t in times.items():
            rows.append({"what": "train step", "width": width, "variant": name, "flops": train_flops, **t})
        del eager, chlast, train_e, train_c, steps
    for r in rows:
        r["gflops"] = r["flops"] / r["s_best"] / 1e9 if r.get("s_best") else None
        r["of_limit"] = r["gflops"] / limit_gflops if limit_gflops and r["gflops"] else None
    return {"tile": TILE, "rows": rows, "limit_gflops": limit_gflops}


def _bf16_forward(net, x) -> torch.Tensor:
    from unetkit.devices import autocast

    with autocast(torch.device("cpu"), True):
        return net(x).float()


def _onnx_forward(net, x) -> Callable[[torch.Tensor], np.ndarray]:
    """ONNX Runtime session of ``net`` exported at ``x``'s shape (threads as torch's)."""
    import io
    import warnings

    import onnxruntime as ort

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, x, buf, input_names=["x"], output_names=["y"], dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])
    return lambda t: session.run(None, {"x": t.numpy()})[0]


def _compiled_forward(width, x, flops, reps, ref) -> dict:
    row = {"what": "forward", "width": width, "variant": "torch.compile", "flops": flops}
    try:
        compiled = torch.compile(_model(width).eval())
        with torch.inference_mode():
            t0 = time.perf_counter()
            compiled(x)
            first = time.perf_counter() - t0
            t = time_interleaved({"c": lambda: compiled(x)}, reps)["c"]
            row["max_abs_diff_vs_eager"] = float((compiled(x) - ref).abs().max())
        row.update(t)
        row["compile_s"] = first - t["s_best"]
    except Exception as err:  # the compiler needs a C++ toolchain; report instead of failing
        row["status"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}"
    torch._dynamo.reset()
    return row


# ---------------------------------------------------------------- (e) data pipeline


def pipeline(quick: bool = False, width: int = 16) -> dict:
    """Training steps fed by TileDataset + DataLoader (num_workers 0, 1) vs compute alone."""
    from unetkit import geometry
    from unetkit.augment import AugmentConfig
    from unetkit.data import make_pairs
    from unetkit.synthetic import make_em_dataset
    from unetkit.train import TileDataset

    rounds, steps = (2, 3) if quick else (3, 6)  # variants alternate round by round
    samples = make_em_dataset(4 if quick else 8, shape=(512, 512), seed=0)
    pairs = make_pairs([s.image for s in samples], [s.labels for s in samples], kind="binary")
    out = geometry.output_size(TILE)
    dataset = TileDataset(pairs, AugmentConfig(), (TILE, TILE), (out, out), seed=0)
    net = _model(width).train()
    train = _trainer(net)
    x, y, w = (t[None] for t in dataset[0])
    train(x, y, w)  # warm-up

    def data_alone() -> list[float]:
        # one augmented item in the main process (torch threads as in training)
        ts = []
        for k in range(steps):
            t0 = time.perf_counter()
            dataset[k]
            ts.append(time.perf_counter() - t0)
        return ts

    def compute_alone() -> list[float]:
        return [time_interleaved({"c": lambda: train(x, y, w)}, 1, warmup=0)["c"]["s_best"] for _ in range(steps)]

    def loader(num_workers: int) -> list[float]:
        data = torch.utils.data.DataLoader(dataset, batch_size=1, sampler=range(steps + 1),
                                           num_workers=num_workers, persistent_workers=False)
        t0 = time.perf_counter()
        ts = []
        for xb, yb, wb in data:  # per step: waiting for the batch + the step
            train(xb, yb, wb)
            t1 = time.perf_counter()
            ts.append(t1 - t0)
            t0 = t1
        first_batch[num_workers].append(ts[0])
        return ts[1:]  # the first step includes the workers' start-up

    first_batch: dict[int, list[float]] = {0: [], 1: []}
    variants = {
        "data alone (augment 1 tile)": data_alone,
        "compute alone (fixed batch)": compute_alone,
        "DataLoader num_workers=0": lambda: loader(0),
        "DataLoader num_workers=1": lambda: loader(1),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name] += fn()
    rows = []
    for name, ts in times.items():
        row = {"variant": name, "s_per_step": float(np.median(ts)), "s_mean": float(np.mean(ts)), "n": len(ts)}
        if name.startswith("DataLoader"):
            row["first_step_s"] = float(np.median(first_batch[int(name[-1])]))
        rows.append(row)
    for r in rows:
        r["vs_compute"] = r["s_per_step"] / rows[1]["s_per_step"]
    return {"width": width, "tile": TILE, "rows": rows, "threads": torch.get_num_threads()}


# ---------------------------------------------------------------- driver

PARTS = {"limit": limit, "model": model, "pipeline": pipeline}


def run(quick: bool = False, only=None) -> dict:
    result = {"benchmark": "model", "quick": quick, "machine": machine_info()}
    names = only or list(PARTS)
    lim = None
    for name in names:
        if name == "model":
            if lim is None:
                lim = limit(quick)
                result["limit"] = lim
            result[name] = model(quick, limit_gflops=lim["gflops"])
        else:
            result[name] = PARTS[name](quick)
            if name == "limit":
                lim = result[name]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no torch.compile")
    parser.add_argument("--only", help="comma-separated parts: " + ",".join(PARTS))
    args = parser.parse_args()
    run(args.quick, args.only.split(",") if args.only else None)
