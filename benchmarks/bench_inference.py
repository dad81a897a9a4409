"""Whole-image inference: ``unetkit.predict`` beside MONAI's sliding-window inference.

Every case runs in a fresh subprocess (``python bench_inference.py --case
JSON``) so that its peak resident memory (``VmHWM`` of that process) is
its own. A case builds the model (seeded), makes a random float32 image, calls
the predictor once to warm up (oneDNN picks its kernels on the first call of
a shape) and then times ``reps`` calls; seconds are the best call, the median
is kept in the JSON.

Cases
-----
``512 w64``
    A 512x512 image, paper width 64 (31 M parameters): ``predict`` with the
    automatic tile (one 700x700 tile), with and without channels_last, with
    explicit 572 tiles (four tiles), and with the forward pass run by ONNX
    Runtime (the model exported with dynamic sizes; tiling, normalisation and
    softmax are predict's own). Not with ``--quick``: 572 tiles in contiguous
    layout and batched 4 at a time, 1 torch thread, and the forward pass run
    by ``torch.compile`` (its one-time compile cost is reported).
``4096 w16`` (``--quick``: 2048)
    Output megapixels per second and peak RSS of ``predict`` with the
    automatic tile (within the default 2 GiB activation budget), with the
    largest tile that budget allows (the automatic tile before it was
    balanced), through ONNX Runtime and (not with ``--quick``) in contiguous
    layout.

Peer, same width and image in the same run: MONAI ``BasicUNet(spatial_dims=2,
in_channels=1, out_channels=2, features=(w, w, 2w, 4w, 8w, w))`` (zero-padded
convolutions, a lighter network than the paper's: deepest level 8w instead of
16w) through ``monai.inferers.sliding_window_inference`` (roi 512, overlap
0.25, ``sw_batch_size=1``), followed by the softmax. Missing peers are
reported as "not installed". Each row also gives the FLOPs one image costs
(one pass counted by ``FlopCounterMode`` on the meta device, times the number
of tiles or windows) and the GFLOP/s achieved, so that networks of different
size and tilings with different overlap compare fairly.

Run: ``python benchmarks/bench_inference.py [--quick]``; ``run(quick)`` is the
entry point for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "inference.json"
ROI, OVERLAP = 512, 0.25


def cases(quick: bool) -> list[dict]:
    """The cases in run order; ``warmup`` 0 where one call takes long (the timed call pays oneDNN set-up)."""
    from unetkit.tiling import auto_tile_shape

    big = 2048 if quick else 4096
    reps = 1 if quick else 3
    heavy = dict(reps=1, warmup=0 if quick else 1)
    w64 = dict(size=512, width=64)
    c = [
        dict(name="unetkit auto tile", impl="unetkit", **w64, reps=reps),
        dict(name="unetkit auto tile, contiguous", impl="unetkit", **w64, reps=reps, kwargs=dict(channels_last=False)),
        dict(name="unetkit tile 572", impl="unetkit", **w64, **heavy, kwargs=dict(tile_shape=572)),
        dict(name="unetkit auto tile, onnxruntime", impl="onnx", **w64, reps=reps),
    ]
    if not quick:
        c += [
            dict(name="unetkit tile 572, contiguous", impl="unetkit", **w64, **heavy,
                 kwargs=dict(tile_shape=572, channels_last=False)),
            dict(name="unetkit tile 572, batch 4", impl="unetkit", **w64, **heavy,
                 kwargs=dict(tile_shape=572, batch_size=4)),
            dict(name="unetkit auto tile, 1 thread", impl="unetkit", **w64, **heavy, threads=1),
            dict(name="unetkit auto tile, torch.compile", impl="compile", **w64, reps=reps),
        ]
    largest = auto_tile_shape((big, big), base_features=16)
    from unetkit import UNet
    from unetkit.tiling import choose_tile_shape

    balanced = choose_tile_shape("auto", (big, big), UNet(1, 2, base_features=16).config, device="cuda")  # no CPU rule
    c += [
        dict(name="MONAI sliding window", impl="monai", **w64, reps=reps),
        dict(name="unetkit auto tile", impl="unetkit", size=big, width=16, **heavy),
        dict(name=f"unetkit tile {balanced[0]} (fewest tiles, no CPU rule)", impl="unetkit", size=big, width=16,
             **heavy, kwargs=dict(tile_shape=list(balanced))),
        dict(name=f"unetkit tile {largest[0]} (largest in budget)", impl="unetkit", size=big, width=16, **heavy,
             kwargs=dict(tile_shape=list(largest))),
        dict(name="unetkit auto tile, onnxruntime", impl="onnx", size=big, width=16, **heavy),
        dict(name="MONAI sliding window", impl="monai", size=big, width=16, **heavy),
    ]
    if not quick:
        c.insert(-2, dict(name="unetkit auto tile, contiguous", impl="unetkit", size=big, width=16, **heavy,
                          kwargs=dict(channels_last=False)))
    return c


# ---------------------------------------------------------------- one case (in the child process)


def _max_rss_mb() -> float:
    """Peak resident memory of this process, MB.

    ``VmHWM`` starts afresh at ``exec``; ``ru_maxrss`` would report at least the
    parent's size, which a forked child inherits.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _unetkit_predictor(case: dict, image: np.ndarray):
    import torch

    from unetkit import UNet, predict

    torch.manual_seed(0)
    model = UNet(1, 2, base_features=case["width"]).eval()
    kwargs = dict(case.get("kwargs", {}))
    info = {}
    if case["impl"] == "compile":
        model = torch.compile(model)
        kwargs["channels_last"] = False  # let inductor choose the layout
    elif case["impl"] == "onnx":
        model, info = _onnx_model(model)
        kwargs["channels_last"] = False
    return (lambda: predict(model, image, **kwargs)), info


def _onnx_model(model):
    """The model's valid graph in ONNX Runtime, as ``unetkit predict --backend onnxruntime`` runs it."""
    import onnxruntime as ort

    from unetkit.export.runtime import OnnxUNet

    t0 = time.perf_counter()
    runner = OnnxUNet.from_model(model)
    return runner, {"export_s": time.perf_counter() - t0, "onnxruntime": ort.__version__}


def _monai_predictor(case: dict, image: np.ndarray):
    import monai
    import torch
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import BasicUNet

    w = case["width"]
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(w, w, 2 * w, 4 * w, 8 * w, w)).eval()

    def run():
        x = torch.from_numpy(image)[None, None]
        with torch.inference_mode():
            logits = sliding_window_inference(x, roi_size=(ROI, ROI), sw_batch_size=1, predictor=net, overlap=OVERLAP)
            return torch.softmax(logits, dim=1)[0].numpy()

    return run, {"monai": monai.__version__}


def flops_per_image(case: dict) -> float:
    """FLOPs of the network passes one image needs: per-pass count (on the meta device) x passes."""
    import math

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    size, w = case["size"], case["width"]
    with torch.device("meta"):
        if case["impl"] == "monai":
            from monai.networks.nets import BasicUNet

            net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(w, w, 2 * w, 4 * w, 8 * w, w))
            per_axis = 1 if size <= ROI else 1 + math.ceil((size - ROI) / (ROI * (1 - OVERLAP)))
            shape, passes = (ROI, ROI), per_axis**2
        else:
            from unetkit import UNet
            from unetkit.tiling import choose_tile_shape, plan_tiles

            net = UNet(1, 2, base_features=w)
            kwargs = case.get("kwargs", {})
            shape = choose_tile_shape(kwargs.get("tile_shape", "auto"), (size, size), net.config,
                                      batch_size=kwargs.get("batch_size", 1), device="cpu")
            passes = len(plan_tiles((size, size), shape)[1])
        with FlopCounterMode(display=False) as counter:
            net.eval()(torch.empty(1, 1, *shape))
    return float(counter.get_total_flops()) * passes


def run_case(case: dict) -> dict:
    """Time one case in this process; returns its row (also printed as the last line of stdout)."""
    import torch

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    row = {**case, "torch_threads": torch.get_num_threads()}
    size = case["size"]
    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    try:
        make = _monai_predictor if case["impl"] == "monai" else _unetkit_predictor
        fn, info = make(case, image)
    except ImportError as err:
        return {**row, "status": f"not installed ({err.name})"}
    row.update(info)
    row["gflop_per_image"] = flops_per_image(case) / 1e9
    row["rss_setup_mb"] = _max_rss_mb()
    out = None
    for _ in range(case.get("warmup", 1)):
        t0 = time.perf_counter()
        out = fn()
        row["first_s"] = time.perf_counter() - t0
    times = []
    for _ in range(case["reps"]):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    row.update(status="ok", s_best=min(times), s_median=float(np.median(times)),
               mpix_per_s=size * size / 1e6 / min(times), peak_rss_mb=_max_rss_mb(),
               gflops=row["gflop_per_image"] / min(times),
               out_shape=list(out.shape), checksum=float(np.asarray(out[1], dtype=np.float64).mean()))
    if case["impl"] in ("compile", "onnx"):
        # same answer as the plain path? (one more plain call, after the timings)
        from unetkit import UNet, predict

        torch.manual_seed(0)
        plain = predict(UNet(1, 2, base_features=case["width"]).eval(), image)
        row["max_abs_diff_vs_plain"] = float(np.abs(out - plain).max())
    if case["impl"] == "compile" and "first_s" in row:
        row["compile_s"] = row["first_s"] - row["s_best"]
    return row


# ---------------------------------------------------------------- driver (parent process)


def run_in_subprocess(case: dict, timeout: float = 1800) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**case, "status": f"timed out after {timeout:.0f} s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {**case, "status": f"failed (exit {proc.returncode}): {tail[:100]}"}
    return json.loads(lines[-1])


def run(quick: bool = False, verbose: bool = True) -> dict:
    rows = []
    for case in cases(quick):
        if verbose:
            print(f"  inference: {case['name']} {case['size']}x{case['size']} w{case['width']} ...", flush=True)
        rows.append(run_in_subprocess(case))
    ref = {(r["size"], r["width"]): r for r in rows if r["impl"] == "unetkit" and not r.get("kwargs")
           and not r.get("threads") and r["status"] == "ok"}
    for r in rows:
        base = ref.get((r["size"], r["width"]))
        if r.get("s_best") and base:
            r["vs_default"] = r["s_best"] / base["s_best"]
    result = {"benchmark": "inference", "quick": quick, "rows": rows}
    try:
        from bench_model import machine_info
    except ImportError:
        sys.path.insert(0, str(HERE))
        from bench_model import machine_info
    result["machine"] = machine_info()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    if verbose:
        print(format_table(result))
    return result


def format_table(result: dict) -> str:
    lines = [f"{'case':40s} {'image':>10s} {'s/image':>8s} {'MPix/s':>7s} {'peak RSS MB':>11s} {'x default':>9s}"]
    for r in result["rows"]:
        img = f"{r['size']}^2 w{r['width']}"
        if r["status"] != "ok":
            lines.append(f"{r['name']:40s} {img:>10s} {r['status']}")
            continue
        lines.append(f"{r['name']:40s} {img:>10s} {r['s_best']:8.2f} {r['mpix_per_s']:7.3f} "
                     f"{r['peak_rss_mb']:11.0f} {r.get('vs_default', float('nan')):9.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases, 2048x2048 instead of 4096x4096")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # JSON of one case: run it in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))), flush=True)
    else:
        run(args.quick)
