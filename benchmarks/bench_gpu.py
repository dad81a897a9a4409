"""U-Net speed on a CUDA GPU against the card's own limits and MONAI, in one run.

Parts (``--parts``, default all):

``limit``
    8192^3 matrix products in fp32 (TF32 off), TF32 and bf16: the rates a
    convolution-bound network can at best approach on this card.
``check``
    Correctness on the GPU before any timing: the forward pass in fp32 (TF32
    off), TF32 and bf16 autocast against a float64 CPU reference
    (``||out - ref|| / ||ref||``), the argmax agreement of bf16, and the tiled
    prediction against the whole-image prediction on the GPU (seamless tiling).
``model``
    One 572x572 forward pass and one training step (forward, weighted
    cross-entropy, backward, SGD momentum step) at widths 16, 32 and 64, in fp32
    (TF32 off), TF32 (PyTorch's default for convolutions), bf16 autocast and
    bf16 autocast + channels_last; FLOPs by ``torch.utils.flop_counter``.
``predict``
    ``unetkit.predict`` end to end (numpy image in, numpy probabilities out) on
    a 512x512 image at width 64 (the paper's network) and on 4096x4096 at
    width 16, with MONAI's ``sliding_window_inference`` + ``BasicUNet`` of the
    same width (roi 512, overlap 0.25) beside it when MONAI is installed.
    Peak GPU memory from ``torch.cuda.max_memory_allocated``.

Timing: CUDA events around each tile call (``model``, cuDNN autotuning on),
a synchronised host clock around each whole-image call (``predict``: numpy in,
numpy out); warm-up first, median of ``reps`` calls; random inputs (never
zeros). Writes ``benchmarks/results/gpu.json`` (and ``--out DIR/gpu.json``)
with the card's name after every part, so a run cut short keeps what it
measured, and prints a table.

Run: ``python benchmarks/bench_gpu.py [--quick] [--parts limit,check,model,predict] [--out DIR]``.
Needs a CUDA device; exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results" / "gpu.json"
TILE = 572


# ---------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Settings:
    """What to run: ``device`` is ``cuda`` for real numbers; ``cpu`` only smoke-tests this script."""

    quick: bool = False
    device: str = "cuda"
    widths: tuple[int, ...] = (16, 32, 64)
    sizes: tuple[tuple[int, int], ...] = ((512, 64), (4096, 16))  # (image size, width) for predict
    matmul_n: int = 8192


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def cuda_time(fn: Callable[[], object], reps: int, warmup: int = 3, device: str = "cuda") -> dict:
    """Milliseconds per call of ``fn`` timed with CUDA events: median, best and count."""
    if device != "cuda":
        return wall_time(fn, reps, warmup, device)
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return {"ms_median": float(np.median(times)), "ms_best": float(min(times)), "n": reps}


def wall_time(fn: Callable[[], object], reps: int, warmup: int = 2, device: str = "cuda") -> dict:
    """Milliseconds per call by the host clock, for calls that return to the host (synchronised)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"ms_median": float(np.median(times)), "ms_best": float(min(times)), "n": reps}


class precision:
    """Context: ``mode`` in fp32 (TF32 off), tf32, bf16 (autocast); restores the TF32 flags."""

    def __init__(self, mode: str):
        self.mode = mode

    def __enter__(self):
        self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        tf32 = self.mode != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16,
                                       enabled=self.mode == "bf16" and torch.cuda.is_available())
        self.autocast.__enter__()

    def __exit__(self, *exc):
        self.autocast.__exit__(*exc)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def unet(width: int, device="cuda"):
    from unetkit import UNet

    torch.manual_seed(0)
    return UNet(1, 2, base_features=width).to(device)


# ---------------------------------------------------------------- parts


def limit(s: Settings) -> dict:
    n, reps = s.matmul_n, 5 if s.quick else 10
    g = torch.Generator(device=s.device).manual_seed(0)
    rows = {}
    for mode in ("fp32", "tf32", "bf16"):
        dtype = torch.bfloat16 if mode == "bf16" else torch.float32
        a = torch.randn(n, n, device=s.device, generator=g).to(dtype)
        b = torch.randn(n, n, device=s.device, generator=g).to(dtype)
        with precision("tf32" if mode == "tf32" else "fp32"):
            t = cuda_time(lambda: torch.mm(a, b), reps, device=s.device)
        rows[mode] = {**t, "tflops": 2 * n**3 / (t["ms_median"] * 1e-3) / 1e12}
        del a, b
    return rows


def check(s: Settings) -> dict:
    """Relative errors against float64 on the CPU; tiled vs whole on the GPU."""
    from unetkit import predict

    out = {}
    width, tile = max(s.widths), 252  # a small tile keeps the float64 CPU reference quick
    net = unet(width, "cpu").eval()
    x = torch.randn(2, 1, tile, tile, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = net.double()(x.double()).numpy()
    net = net.float().to(s.device)
    ref_norm = float(np.linalg.norm(ref))
    for mode in ("fp32", "tf32", "bf16"):
        with torch.inference_mode(), precision(mode):
            y = net(x.to(s.device)).float().cpu().double().numpy()
        out[f"forward_rel_err_{mode}"] = float(np.linalg.norm(y - ref) / ref_norm)
        out[f"argmax_agreement_{mode}"] = float((y.argmax(1) == ref.argmax(1)).mean())
        out[f"all_finite_{mode}"] = bool(np.isfinite(y).all())

    # seamless tiling on the GPU: many small tiles == one whole-image tile (fp32, TF32 off)
    image = np.random.default_rng(2).random((333, 517), dtype=np.float32)
    net16 = unet(16, s.device).eval()
    with precision("fp32"):
        whole = predict(net16, image, tile_shape=(524, 716))  # covers the image in one tile
        tiled = predict(net16, image, tile_shape=(220, 252), batch_size=3)
        out["tiled_vs_whole_max_abs_fp32"] = float(np.abs(whole - tiled).max())
        streamed = predict(net16, image, tile_shape=(220, 252), batch_size=3, on_device=False)
        out["on_device_vs_host_tiles_max_abs_fp32"] = float(np.abs(streamed - tiled).max())
    cpu = predict(unet(16, "cpu").eval(), image)
    out["gpu_fp32_vs_cpu_max_abs"] = float(np.abs(whole - cpu).max())
    with precision("bf16"):
        amp = predict(net16, image, amp=True)
    out["predict_bf16_vs_fp32_max_abs"] = float(np.abs(amp - whole).max())
    out["predict_bf16_mask_agreement"] = float((amp.argmax(0) == whole.argmax(0)).mean())
    return out


def model(s: Settings) -> list[dict]:
    from unetkit.losses import weighted_cross_entropy

    reps = 10 if s.quick else 30
    rows = []
    out_size = TILE - 184
    dev = s.device
    g = torch.Generator(device=dev).manual_seed(3)
    for width in s.widths:
        for batch in ((1, 4) if width == 64 else (1,)):
            x = torch.randn(batch, 1, TILE, TILE, device=dev, generator=g)
            y = torch.randint(0, 2, (batch, out_size, out_size), device=dev, generator=g)
            w = torch.rand(batch, out_size, out_size, device=dev, generator=g) + 0.5
            with torch.device("meta"):
                from unetkit import UNet

                meta = UNet(1, 2, base_features=width)
                xm = torch.empty(batch, 1, TILE, TILE)
                fwd_flops = count_flops(lambda: meta.eval()(xm))
                train_flops = count_flops(lambda: meta.train()(xm).sum().backward())
            for variant in ("fp32", "tf32", "bf16", "bf16+channels_last"):
                mode = variant.split("+")[0]
                fmt = torch.channels_last if "channels_last" in variant else torch.contiguous_format
                net = unet(width, dev).to(memory_format=fmt)
                xv = x.contiguous(memory_format=fmt)
                opt = torch.optim.SGD(net.parameters(), lr=1e-5, momentum=0.99)

                def forward():
                    with torch.inference_mode(), precision(mode):
                        return net.eval()(xv)

                def step():
                    with precision(mode):
                        logits = net.train()(xv)
                    loss = weighted_cross_entropy(logits.float(), y, w)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                saved = torch.backends.cudnn.benchmark
                torch.backends.cudnn.benchmark = True
                try:
                    tf = cuda_time(forward, reps, device=dev)
                    ts = cuda_time(step, reps, device=dev)
                finally:
                    torch.backends.cudnn.benchmark = saved
                for what, t, flops in (("forward", tf, fwd_flops), ("train step", ts, train_flops)):
                    rows.append({"what": what, "width": width, "batch": batch, "variant": variant, **t,
                                 "flops": flops, "tflops": flops / (t["ms_median"] * 1e-3) / 1e12})
                del net, opt
            if dev == "cuda":
                torch.cuda.empty_cache()
    return rows


def _monai(width: int, image: np.ndarray, amp: bool, sw_batch: int):
    from monai.inferers import sliding_window_inference
    from monai.networks.nets import BasicUNet

    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2,
                    features=(width, width, 2 * width, 4 * width, 8 * width, width)).cuda().eval()

    def run():
        x = torch.from_numpy(image)[None, None].cuda()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            logits = sliding_window_inference(x, roi_size=(512, 512), sw_batch_size=sw_batch, predictor=net,
                                              overlap=0.25)
            return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()

    return run


def predict_part(s: Settings) -> list[dict]:
    """Whole-image ``predict`` vs MONAI; first call (cuDNN autotuning) and steady state kept apart."""
    from unetkit import predict

    rows = []
    cuda = s.device == "cuda"
    for size, width in s.sizes:
        reps = (20 if s.quick else 50) if size <= 1024 else (3 if s.quick else 5)
        image = np.random.default_rng(4).random((size, size), dtype=np.float32)
        net = unet(width, s.device).eval()
        variants = {
            "unetkit TF32, tiles from host": (lambda: predict(net, image, on_device=False), "tf32", False),
            "unetkit TF32": (lambda: predict(net, image), "tf32", False),
            "unetkit TF32, cuDNN autotune": (lambda: predict(net, image), "tf32", True),
            "unetkit bf16, tiles from host": (lambda: predict(net, image, amp=True, on_device=False), "tf32", False),
            "unetkit bf16 (--amp)": (lambda: predict(net, image, amp=True), "tf32", False),
            "unetkit bf16, cuDNN autotune": (lambda: predict(net, image, amp=True), "tf32", True),
            "unetkit fp32 (TF32 off)": (lambda: predict(net, image), "fp32", False),
        }
        if size > 512:
            variants["unetkit bf16, 4 tiles/batch"] = (lambda: predict(net, image, amp=True, batch_size=4), "tf32", False)
        try:
            import monai  # noqa: F401

            for amp, sw in (((False, 1), (False, 8), (True, 8)) if cuda else ()):
                name = f"MONAI BasicUNet-{width} {'bf16' if amp else 'TF32'} sw_batch {sw}"
                variants[name] = (_monai(width, image, amp, sw), "tf32", True)
        except ImportError:
            rows.append({"case": f"{size}^2", "variant": "MONAI", "status": "not installed"})
        for name, (fn, mode, autotune) in variants.items():
            saved = torch.backends.cudnn.benchmark
            try:
                if cuda:
                    torch.backends.cudnn.benchmark = autotune
                    torch.cuda.empty_cache()  # each variant starts from the same allocator state
                    torch.cuda.reset_peak_memory_stats()
                with precision(mode):
                    t0 = time.perf_counter()
                    fn()
                    sync(s.device)
                    first_ms = (time.perf_counter() - t0) * 1e3
                    peak_first = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                    t = wall_time(fn, reps, warmup=1, device=s.device)
            except Exception as err:  # one failing variant must not hide the others
                rows.append({"case": f"{size}^2 w{width}", "variant": name,
                             "status": f"failed: {type(err).__name__}: {err}"[:200]})
                continue
            finally:
                torch.backends.cudnn.benchmark = saved
            rows.append({"case": f"{size}^2 w{width}", "size": size, "width": width, "variant": name, **t,
                         "first_ms": first_ms, "mpix_per_s": size * size / 1e6 / (t["ms_median"] * 1e-3),
                         "peak_gpu_mb_first_call": peak_first,
                         "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0,
                         "status": "ok"})
        del net
        if cuda:
            torch.cuda.empty_cache()
    return rows


# ---------------------------------------------------------------- driver


def format_table(result: dict) -> str:
    lines = [f"GPU: {result['machine'].get('gpu')}  torch {result['machine'].get('torch')}"]
    lim = result.get("limit") or {}
    if isinstance(lim, dict) and "fp32" in lim:
        lines.append("limit (8192^3 mm): " + ", ".join(f"{k} {v['tflops']:.0f} TFLOP/s" for k, v in lim.items()))
    if isinstance(result.get("check"), dict):
        lines.append("check: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in result["check"].items()))
    if isinstance(result.get("model"), list):
        lines.append(f"{'572^2 tile':22s} {'w':>3s} {'b':>2s} {'variant':20s} {'ms':>8s} {'TFLOP/s':>8s} {'of bf16 mm':>10s}")
        bf16 = lim.get("bf16", {}).get("tflops") if isinstance(lim, dict) else None
        for r in result["model"]:
            frac = f"{r['tflops'] / bf16:10.0%}" if bf16 else ""
            lines.append(f"{r['what']:22s} {r['width']:3d} {r['batch']:2d} {r['variant']:20s} "
                         f"{r['ms_median']:8.2f} {r['tflops']:8.1f} {frac}")
    if isinstance(result.get("predict"), list):
        lines.append(f"{'whole image':12s} {'variant':36s} {'ms':>8s} {'MPix/s':>7s} {'1st call ms':>11s} "
                     f"{'peak GPU MB':>11s} {'1st call':>9s}")
        for r in result["predict"]:
            if r.get("status") != "ok":
                lines.append(f"{r['case']:12s} {r['variant']:36s} {r['status']}")
                continue
            lines.append(f"{r['case']:12s} {r['variant']:36s} {r['ms_median']:8.2f} {r['mpix_per_s']:7.1f} "
                         f"{r['first_ms']:11.0f} {r['peak_gpu_mb']:11.0f} {r['peak_gpu_mb_first_call']:9.0f}")
    for key, value in result.items():
        if isinstance(value, dict) and "error" in value:
            lines.append(f"{key}: FAILED {value['error']}")
    return "\n".join(lines)


def run(settings: Settings, parts: list[str], out_dir: str | None) -> dict:
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA device; none is available (--device cpu only smoke-tests it)")
    funcs = {"limit": limit, "check": check, "model": model, "predict": predict_part}
    result = {"benchmark": "gpu", "quick": settings.quick, "device": settings.device, "machine": machine_info()}
    result["machine"]["cuda"] = torch.version.cuda
    result["machine"]["cudnn"] = torch.backends.cudnn.version()
    for part in parts:
        t0 = time.perf_counter()
        print(f"[{part}] ...", flush=True)
        try:
            result[part] = funcs[part](settings)
        except Exception as err:  # keep the other parts' numbers
            traceback.print_exc()
            result[part] = {"error": f"{type(err).__name__}: {err}"[:300]}
        result.setdefault("part_seconds", {})[part] = time.perf_counter() - t0
        print(f"[{part}] {time.perf_counter() - t0:.0f} s", flush=True)
        _write(result, settings, out_dir)  # after every part: a run cut short keeps its numbers
    print(format_table(result), flush=True)
    return result


def _write(result: dict, settings: Settings, out_dir: str | None) -> None:
    payload = json.dumps(result, indent=2) + "\n"
    if settings.device == "cuda":  # a CPU smoke test must not overwrite real numbers
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(payload)
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "gpu.json").write_text(payload)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--parts", default="limit,check,model,predict")
    parser.add_argument("--out", help="also write gpu.json into this folder")
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu smoke-tests the script")
    parser.add_argument("--widths", default="16,32,64", help="model widths for the 'model' part")
    parser.add_argument("--sizes", default="512:64,4096:16", help="SIZE:WIDTH cases for the 'predict' part")
    parser.add_argument("--matmul-n", type=int, default=8192)
    args = parser.parse_args()
    settings = Settings(quick=args.quick, device=args.device,
                        widths=tuple(int(w) for w in args.widths.split(",")),
                        sizes=tuple(tuple(int(v) for v in c.split(":")) for c in args.sizes.split(",")),
                        matmul_n=args.matmul_n)
    run(settings, [p for p in args.parts.split(",") if p], args.out)
