"""Block-wise segmentation of Zarr volumes: exactness, memory per worker, overhead, scaling (side by side).

Cases, each on a generated uint8 Zarr (smooth noise, chunks 1024x1024):

* exactness: an odd image (3001 x 2049) with odd output chunks (700 x 333),
  1 worker, against single-process ``predict`` at the same thread count:
  bitwise (float32) with whole-image tiles; the largest difference with
  region tiles; float64 bitwise on one odd block (``predict_region``).
* memory: peak RSS of each worker process on sizes ``--sizes`` (default 8192
  and 16384) at width 16 with 2 workers x 1 thread.
* overhead: 1 worker x 2 threads against the single-process streamed
  ``predict`` of the same image into a Zarr, alternating, median of ``--reps``.
* scaling: 1 vs 2 workers (x 1 thread) on the same image.

    python benchmarks/bench_distributed.py [--quick] [--sizes 8192,16384] [--parts exactness,overhead,memory]

Writes ``benchmarks/results/distributed.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import machine_info  # noqa: E402

RESULTS = HERE / "results" / "distributed.json"


def make_zarr(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A smooth-noise uint8 image written chunk by chunk (never whole in memory)."""
    import zarr
    from scipy import ndimage as ndi

    z = zarr.open_array(str(path), mode="w", shape=size, chunks=(1024, 1024), dtype="u1")
    rng = np.random.default_rng(seed)
    for r in range(0, size[0], 1024):
        for c in range(0, size[1], 1024):
            block = ndi.gaussian_filter(rng.random((min(1024, size[0] - r), min(1024, size[1] - c))), 3)
            z[r: r + block.shape[0], c: c + block.shape[1]] = np.clip(block * 255 * 4 - 255, 0, 255).astype(np.uint8)
    return path


def worker_peak_rss(client) -> list[float]:
    """Peak resident memory (GB) of every worker process so far: VmHWM of its own address space.

    Not ``ru_maxrss``: Linux keeps that high-water mark across ``execve``, so a
    worker spawned by a nanny forked from this (large) benchmark process
    reports the parent's memory, not its own.
    """
    def peak():
        with open("/proc/self/status") as fh:
            kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        return kb / 1024**2

    return sorted(client.run(peak).values())


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def exactness(ckpt: str, tmp: Path) -> dict:
    import zarr

    from unetkit import load_model, predict
    from unetkit.distributed import SegmentConfig, local_client, segment_volume
    from unetkit.inference import predict_region
    from unetkit.normalize import intensity_range

    src = make_zarr(tmp / "odd.zarr", (3001, 2049), seed=1)
    image = zarr.open_array(str(src))[:]
    torch.set_num_threads(1)
    model = load_model(ckpt)
    ref = predict(model, image)
    client = local_client(1)
    out = {}
    try:
        for tiles in ("whole-image", "region"):
            summary = segment_volume(ckpt, src, tmp / f"odd_{tiles}.zarr",
                                     SegmentConfig(chunks=(700, 333), threads=1, tiles=tiles), client=client)
            got = zarr.open_group(str(tmp / f"odd_{tiles}.zarr"))["0"][:]
            out[tiles] = {"bitwise": bool(np.array_equal(got, ref[1])), "max_abs_diff": float(np.abs(got - ref[1]).max()),
                          "tile_runs_per_plane": summary["tile_runs_per_plane"], "plane_tiles": summary["plane_tiles"]}
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    m64 = model.double()
    offset, scale = intensity_range(image, m64.config.normalization)
    rows, cols = slice(700, 1400), slice(333, 666)
    from unetkit.tiling import choose_tile_shape

    tile = choose_tile_shape("auto", image.shape, m64.config, device="cpu")
    whole = predict(m64, image, tile_shape=tile, out_dtype=np.float64)
    block = predict_region(m64, image, rows, cols, tile_shape=tile, offset=offset, scale=scale, out_dtype=np.float64)
    out["float64_block_bitwise"] = bool(np.array_equal(block, whole[:, rows, cols]))
    torch.set_num_threads(2)
    return out


def memory(ckpt: str, tmp: Path, sizes: list[int]) -> list[dict]:
    from unetkit.distributed import SegmentConfig, local_client, segment_volume

    rows = []
    for size in sizes:
        src = make_zarr(tmp / f"m{size}.zarr", (size, size))
        client = local_client(2)
        try:
            t = timed(lambda: segment_volume(ckpt, src, tmp / f"m{size}_out.zarr", SegmentConfig(threads=1),
                                             client=client))
            rows.append({"size": size, "workers": 2, "peak_rss_gb_per_worker": worker_peak_rss(client), "seconds": t,
                         "mpix_per_s": size * size / t / 1e6})
        finally:
            cluster = client.cluster
            client.close()
            cluster.close()
        shutil.rmtree(tmp / f"m{size}_out.zarr", ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
        print(f"memory {size}^2: {rows[-1]['peak_rss_gb_per_worker']} GB per worker, {t:.0f} s", flush=True)
    return rows


def overhead_and_scaling(ckpt: str, tmp: Path, size: int, reps: int) -> dict:
    import zarr

    from unetkit import load_model, predict
    from unetkit.distributed import SegmentConfig, local_client, segment_volume

    src = make_zarr(tmp / "o.zarr", (size, size))
    model = load_model(ckpt)
    image = zarr.open_array(str(src), mode="r")

    def single():
        out = zarr.open_array(str(tmp / "single.zarr"), mode="w", shape=(2, size, size), chunks=(2, 1024, 1024),
                              dtype="f4")
        predict(model, image, out=out)

    times = {"single process": [], "1 worker x 2 threads": [], "2 workers x 1 thread": [], "1 worker x 1 thread": []}
    clients = {"1 worker x 2 threads": (1, 2), "2 workers x 1 thread": (2, 1), "1 worker x 1 thread": (1, 1)}
    open_clients = {k: local_client(w) for k, (w, _) in clients.items()}
    warm = make_zarr(tmp / "warm.zarr", (512, 512))
    try:
        # One untimed small run per cluster first: a fresh worker's first torch call pays one-off costs (thread
        # pools, kernels) that the single process, which already ran a model in this benchmark, does not.
        for name, (_, threads) in clients.items():
            segment_volume(ckpt, warm, tmp / f"warm_{name.replace(' ', '_')}.zarr", SegmentConfig(threads=threads),
                           client=open_clients[name])
        predict(model, np.zeros((512, 512), np.uint8))
        for _ in range(reps):
            times["single process"].append(timed(single))
            for name, (_, threads) in clients.items():
                target = tmp / f"{name.replace(' ', '_')}.zarr"
                shutil.rmtree(target, ignore_errors=True)
                times[name].append(timed(lambda: segment_volume(ckpt, src, target, SegmentConfig(threads=threads),
                                                                client=open_clients[name])))
    finally:
        for c in open_clients.values():
            cluster = c.cluster
            c.close()
            cluster.close()
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"size": size, "reps": reps, "seconds": times, "median_s": med,
            "overhead_1x2": med["1 worker x 2 threads"] / med["single process"] - 1,
            "speedup_2x1_vs_1x1": med["1 worker x 1 thread"] / med["2 workers x 1 thread"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="8192,16384")
    parser.add_argument("--overhead-size", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--parts", default="exactness,overhead,memory", help="comma-separated subset to run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    from unetkit import UNet, save_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="unetkit-bench-dist-"))
    torch.manual_seed(0)
    ckpt = str(save_checkpoint(tmp / "w16.pt", UNet(1, 2, base_features=16)))
    sizes = [2048, 4096] if args.quick else [int(s) for s in args.sizes.split(",")]
    result = {"machine": machine_info(), "width": 16}
    try:
        if "exactness" in parts:
            result["exactness"] = exactness(ckpt, tmp)
            print("exactness", json.dumps(result["exactness"]), flush=True)
        if "overhead" in parts:
            result["overhead"] = overhead_and_scaling(ckpt, tmp, 2048 if args.quick else args.overhead_size,
                                                      1 if args.quick else args.reps)
            print("overhead", json.dumps(result["overhead"]["median_s"]), flush=True)
        if "memory" in parts:
            result["memory"] = memory(ckpt, tmp, sizes)
    finally:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
