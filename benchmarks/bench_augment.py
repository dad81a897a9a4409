"""Throughput of the augmentation: image + label pairs per second.

One 512x512 float32 image with its uint8 label image (ISBI 2012 training slice
00 when ``UNETKIT_DATA`` is set, random data otherwise), augmented to a
512x512 tile in a single process with ``torch.set_num_threads(2)``. Side by
side in the same run, each only if importable (they live in the ``bench``
extra): elasticdeform ``deform_random_grid(sigma=10, points=3, order=[3, 0])``,
MONAI ``Rand2DElasticd`` and albumentations ``ElasticTransform``. The peers do
an elastic deformation (MONAI also a rotation); compare them with the
"elastic only" row as well as with the full unetkit augmentation.

Run: ``python benchmarks/bench_augment.py [--quick]``. Prints a table and
writes ``benchmarks/results/augment.json`` with the machine it ran on.
``run(quick)`` is the entry point for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from machine import machine_info  # noqa: E402
import torch

from unetkit.augment import AugmentConfig, augment

RESULTS = Path(__file__).resolve().parent / "results" / "augment.json"
SHAPE = (512, 512)
THREADS = 2


def load_pair() -> tuple[np.ndarray, np.ndarray, str]:
    """ISBI 2012 slice 00 (float32 in [0, 1], uint8 0/255) or random stand-ins."""
    root = os.environ.get("UNETKIT_DATA")
    if root:
        base = Path(root) / "isbi2012" / "train"
        if (base / "images" / "00.png").exists():
            import imageio.v3 as iio

            image = iio.imread(base / "images" / "00.png").astype(np.float32) / 255.0
            labels = iio.imread(base / "labels" / "00.png").astype(np.uint8)
            return image, labels, "isbi2012/train/00"
    rng = np.random.default_rng(0)
    image = rng.random(SHAPE, dtype=np.float32)
    labels = np.where(rng.random(SHAPE) < 0.78, 255, 0).astype(np.uint8)
    return image, labels, "random"


Method = tuple[Callable[[], object], int, int]  # function, calls, torch threads


def time_rounds(methods: dict[str, Method], rounds: int) -> dict:
    """Time each method's calls, interleaved over ``rounds`` rounds.

    Interleaving spreads slow phases of a shared machine over all methods
    alike. Returns, per method, median and mean ms per call and pairs/s from
    the median.
    """
    times: dict[str, list[float]] = {name: [] for name in methods}
    for fn, _, threads in methods.values():  # warm-up (allocations, caches, lazy imports)
        torch.set_num_threads(threads)
        fn()
        fn()
    for _ in range(rounds):
        for name, (fn, n, threads) in methods.items():
            torch.set_num_threads(threads)
            for _ in range(max(1, n // rounds)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    out = {}
    torch.set_num_threads(THREADS)
    for name, ts in times.items():
        ts = np.asarray(ts)
        out[name] = {
            "n": int(ts.size),
            "ms_median": float(np.median(ts) * 1e3),
            "ms_mean": float(ts.mean() * 1e3),
            "pairs_per_s": float(1.0 / np.median(ts)),
        }
    return out


# ---------------------------------------------------------------- methods


def unetkit_methods(
    image: np.ndarray, labels: np.ndarray
) -> dict[str, tuple[Callable[[], object], int]]:
    """unetkit variants: name -> (function, torch threads)."""
    off = dict(contrast_p=0.0, brightness_p=0.0, gamma_p=0.0, noise_p=0.0)
    configs = {
        "unetkit (default config)": AugmentConfig(),
        "unetkit (all, p=1)": AugmentConfig(
            flip_p=1.0, contrast_p=1.0, brightness_p=1.0, gamma_p=1.0, noise_p=1.0
        ),
        "unetkit (elastic only)": AugmentConfig(rotation_p=0.0, flip_p=0.0, **off),
    }
    methods = {}
    for name, config in configs.items():
        rng = np.random.default_rng(0)
        fn = functools.partial(augment, rng, config, image, labels, out_shape=SHAPE)
        methods[name] = (fn, THREADS)
    # As in a DataLoader worker, where torch runs one thread.
    methods["unetkit (default config, 1 thread)"] = (methods["unetkit (default config)"][0], 1)
    return methods


def elasticdeform_method(image, labels):
    import elasticdeform

    np.random.seed(0)  # elasticdeform draws from the global NumPy RNG

    def fn():
        return elasticdeform.deform_random_grid(
            [image, labels], sigma=10, points=3, order=[3, 0], mode="mirror"
        )

    return fn, getattr(elasticdeform, "__version__", "unknown")


def monai_method(image, labels):
    import monai
    from monai.transforms import Rand2DElasticd

    transform = Rand2DElasticd(
        keys=["image", "label"],
        spacing=(256, 256),  # ~3x3 control points over 512 px, as the paper
        magnitude_range=(10, 10),  # displacement N(0, 10 px)
        spatial_size=SHAPE,
        prob=1.0,
        rotate_range=(np.pi,),
        mode=("bicubic", "nearest"),
        padding_mode="reflection",
    )
    transform.set_random_state(0)
    data = {"image": image[None], "label": labels[None]}

    def fn():
        return transform(data)

    return fn, monai.__version__


def albumentations_method(image, labels):
    import albumentations as A
    import cv2

    transform = A.ElasticTransform(
        alpha=2100,  # with sigma=50: RMS displacement ~10 px (measured)
        sigma=50,
        interpolation=cv2.INTER_CUBIC,
        mask_interpolation=cv2.INTER_NEAREST,
        border_mode=cv2.BORDER_REFLECT_101,
        p=1.0,
    )
    transform.set_random_seed(0)

    def fn():
        return transform(image=image, mask=labels)

    return fn, A.__version__


PEERS = {
    "elasticdeform": elasticdeform_method,
    "monai Rand2DElasticd": monai_method,
    "albumentations ElasticTransform": albumentations_method,
}


# ---------------------------------------------------------------- driver


def run(quick: bool = False) -> dict:
    """Measure every method, print a table, write the JSON; return the results."""
    torch.set_num_threads(THREADS)
    image, labels, source = load_pair()
    n_ours, n_peer, rounds = (20, 8, 2) if quick else (150, 30, 5)
    ours = unetkit_methods(image, labels)
    methods: dict[str, Method] = {name: (fn, n_ours, t) for name, (fn, t) in ours.items()}
    info: dict[str, dict] = {name: {"status": "ok"} for name in methods}
    for name, make in PEERS.items():
        try:
            fn, version = make(image, labels)
        except ImportError as err:
            info[name] = {"status": f"not installed ({err.name})"}
            continue
        methods[name] = (fn, n_peer, THREADS)
        info[name] = {"status": "ok", "version": version}
    timings = time_rounds(methods, rounds)
    rows = [{"name": name, **meta, **timings.get(name, {})} for name, meta in info.items()]
    result = {
        "benchmark": "augment",
        "task": "512x512 float32 image + uint8 label -> 512x512 tile, one process",
        "input": source,
        "quick": quick,
        "machine": machine_info(),
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(result))
    return result


def format_table(result: dict) -> str:
    rows = result["results"]
    ours = next(r for r in rows if r["name"] == "unetkit (default config)")
    lines = [
        f"augmentation throughput, input {result['input']}, "
        f"{result['machine']['cpu']}, torch threads {result['machine']['torch_threads']}",
        f"{'method':34s} {'pairs/s':>9s} {'ms/pair':>9s} {'default is x faster':>20s}",
    ]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{r['name']:34s} {r['status']}")
            continue
        ratio = ours["pairs_per_s"] / r["pairs_per_s"]
        lines.append(f"{r['name']:34s} {r['pairs_per_s']:9.1f} {r['ms_median']:9.2f} {ratio:20.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions")
    run(parser.parse_args().quick)
