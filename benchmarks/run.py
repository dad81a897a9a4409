"""All of unetkit's benchmarks in one table: each target beside the measured figure and the peer.

Parts (``--only`` takes a comma-separated subset):

``limit``     fp32 ``torch.mm`` GFLOP/s at n = 2048 and 4096 (bench_model.limit)
``model``     572x572 forward and training step at widths 16/32/64: GFLOP/s and
              share of the limit; eager, channels_last, torch.compile (bench_model.model)
``inference`` whole images with ``unetkit.predict`` beside MONAI sliding-window
              inference, each case in a fresh process for its peak RSS (bench_inference)
``augment``   augmentation pairs/s beside elasticdeform, MONAI, albumentations (bench_augment)
``weights``   border weight map ms per 512x512 label (bench_weights)
``pipeline``  training step fed by TileDataset + DataLoader vs compute alone (bench_model.pipeline)
``metrics``   evaluation metrics (bench_metrics), when it offers ``run(quick)``
``gpu``       on a CUDA device: matmul limits, correctness, 572 tiles and whole images
              beside MONAI (bench_gpu); reported as skipped without one

Run from the repository root, with the peers importable::

    /tmp/benchvenv/bin/python benchmarks/run.py [--quick] [--only model,inference]

``--quick`` uses fewer repetitions, no torch.compile or ONNX rows, and a
2048x2048 image instead of 4096x4096 (the table says so); it takes a few
minutes on a 2-core machine. Writes ``benchmarks/results/run-<timestamp>.json``
and ``benchmarks/results/latest.json`` (machine info, every part's full
result, the table rows). A part that fails is reported in the table, and the
others still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

import bench_model  # noqa: E402

PARTS = ("limit", "model", "inference", "augment", "weights", "pipeline", "metrics", "gpu")
TARGET_GPU_512_MS = 10.0  # ms per 512x512 image at width 64 on an H100 (issue 6)
NOTES_LIMIT = 135.0  # GFLOP/s, fp32 torch.mm on this machine (shared/docs/NOTES.md)
TARGET_512_S = 4.0  # s per 512x512 image at width 64 (issue 6)
FOUR_TILES_S = 11.5  # s, four 572 tiles in eager mode (issue 6)


def load_script(name: str):
    """Import ``benchmarks/<name>.py`` by path (they are scripts, not a package)."""
    path = HERE / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} does not exist")
    spec = importlib.util.spec_from_file_location(f"unetkit_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "run"):
        raise AttributeError(f"{path.name} has no run(quick)")
    return module


# ---------------------------------------------------------------- table rows
# A row: (part, case, target, measured, peer, note)


def _s(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def rows_limit(res: dict) -> list[tuple]:
    return [("a limit", f"fp32 torch.mm n={r['size']}", f"~{NOTES_LIMIT:.0f} GFLOP/s", f"{r['gflops']:.1f} GFLOP/s",
             "", f"median {r['gflops_median']:.1f}") for r in res["rows"]]


def rows_model(res: dict) -> list[tuple]:
    out = []
    for r in res["rows"]:
        case = f"{r['what']} {res['tile']} w{r['width']} {r['variant']}"
        if r.get("status"):
            out.append(("b model", case, "", r["status"], "", ""))
            continue
        share = f" = {100 * r['of_limit']:.0f}% of limit" if r.get("of_limit") else ""
        note = f"{r['flops'] / 1e9:.0f} GFLOP, {r['s_best']:.2f} s"
        if "compile_s" in r:
            note += f", compile {r['compile_s']:.0f} s once"
        if r.get("max_abs_diff_vs_eager"):
            note += f", |diff| {r['max_abs_diff_vs_eager']:.1e}"
        out.append(("b model", case, "-> limit", f"{r['gflops']:.1f} GFLOP/s{share}", "", note))
    return out


def rows_inference(res: dict) -> list[tuple]:
    rows = res["rows"]
    peers = {r["size"]: r for r in rows if r["impl"] == "monai"}
    out = []
    for r in rows:
        if r["impl"] == "monai":
            continue
        big = r["size"] > 512
        case = f"predict {r['size']}^2 w{r['width']} {r['name'].removeprefix('unetkit ')}"
        if r["size"] == 512:
            target = f"<= {TARGET_512_S:.0f} s"
            if "572" in r["name"]:
                target = f"~{FOUR_TILES_S} s (ref.)" if "contiguous" in r["name"] else "(ref.)"
        else:
            target = "vs peer"
        note = ("quick: 2048^2 instead of 4096^2; " if big and res.get("quick") else "")
        if r["status"] != "ok":
            out.append(("c inference", case, target, r["status"], "", note))
            continue
        note += f"peak RSS {r['peak_rss_mb']:.0f} MB"
        if r.get("gflops"):
            note += f", {r['gflop_per_image']:.0f} GFLOP at {r['gflops']:.0f} GFLOP/s"
        if r.get("vs_default") and r["name"] != "unetkit auto tile":
            note += f", x{r['vs_default']:.2f} time of auto"
        if "compile_s" in r:
            note += f", compile {r['compile_s']:.0f} s once"
        if "export_s" in r:
            note += f", export {r['export_s']:.0f} s once"
        if "max_abs_diff_vs_plain" in r:
            note += f", |diff| {r['max_abs_diff_vs_plain']:.1e}"
        measured = f"{r['mpix_per_s']:.2f} MPix/s" if big else f"{r['s_best']:.2f} s"
        peer = ""
        p = peers.get(r["size"])
        if p is not None and (big or r["name"] == "unetkit auto tile"):
            if p["status"] != "ok":
                peer = f"MONAI: {p['status']}"
            else:
                peer = (f"MONAI {p['mpix_per_s']:.2f} MPix/s" if big else f"MONAI {p['s_best']:.2f} s") + \
                       f", {p['peak_rss_mb']:.0f} MB" + (f", {p['gflop_per_image']:.0f} GFLOP" if p.get("gflops") else "")
        out.append(("c inference", case, target, measured, peer, note))
    return out


def rows_augment(res: dict) -> list[tuple]:
    out = []
    for r in res.get("results", []):
        ok = r.get("status") == "ok"
        value = f"{r['pairs_per_s']:.0f} pairs/s" if ok else r.get("status", "?")
        note = f"{r['ms_median']:.1f} ms median" if ok else ""
        if r.get("name", "").startswith("unetkit"):
            out.append(("d augment", f"512^2 {r['name'].removeprefix('unetkit ')}", "vs peer", value, "", note))
        else:
            out.append(("d augment", "512^2 elastic (peer)", "", "", f"{r['name']}: {value}", note))
    return out


def rows_weights(res: dict) -> list[tuple]:
    target = getattr(rows_weights, "target_ms", None)
    out = []
    for r in res.get("results", []):
        out.append(("d weights", f"border weight map {r.get('label', '?')}",
                    f"<= {target:.0f} ms" if target else "",
                    f"{r['fast_ms_median']:.1f} ms", f"brute force {r['brute_ms']:.0f} ms",
                    f"{r.get('instances', '?')} instances, |diff| {r.get('max_abs_diff', float('nan')):.1g}"))
    sweep = res.get("isbi_sweep")
    if sweep:
        out.append(("d weights", f"all {sweep['labels']} ISBI labels", f"<= {target:.0f} ms" if target else "",
                    f"{sweep['fast_ms_median']:.1f} ms", "", f"slowest {sweep['fast_ms_max']:.1f} ms"))
    return out


def rows_pipeline(res: dict) -> list[tuple]:
    return [("e pipeline", f"train step {res['tile']} w{res['width']}: {r['variant']}",
             "~ compute alone" if r["variant"].startswith("DataLoader") else "",
             f"{r['s_per_step']:.2f} s/step", "", f"x{r['vs_compute']:.2f} of compute"
             + (f", first step {r['first_step_s']:.1f} s" if "first_step_s" in r else ""))
            for r in res["rows"]]


def rows_generic(part: str, res: dict) -> list[tuple]:
    """Rows of a part whose result layout run.py does not know: name and numeric fields."""
    items = res.get("results") or res.get("rows") or []
    if isinstance(items, dict):
        items = [{"name": k, **v} if isinstance(v, dict) else {"name": k, "value": v} for k, v in items.items()]
    out = []
    for r in items[:20]:
        if not isinstance(r, dict):
            continue
        name = str(r.get("name") or r.get("label") or r.get("method") or "?")
        nums = ", ".join(f"{k} {v:.3g}" for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        out.append((part, name, "", nums[:60], "", ""))
    return out or [(part, "(no rows)", "", "", "", "")]


def rows_metrics(res: dict) -> list[tuple]:
    rows = []
    for name, case in res["cases"].items():
        r = case["result"]
        note = ", ".join(f"{k} {r[k]:.6f}" for k in ("pixel_error", "rand_error", "warping_error", "v_rand")
                         if r.get(k) is not None)
        rows.append(("metrics", f"all metrics, 25 ISBI slices, sweep: {name}", "< 60 s",
                     f"{case['seconds']:.1f} s", "", note))
    return rows


def rows_gpu(res: dict) -> list[tuple]:
    if res.get("skipped"):
        return [("gpu", "(skipped)", "", res["skipped"], "", "")]
    card = res["machine"].get("gpu")
    rows = [("gpu limit", f"{mode} torch.mm n=8192 on {card}", "", f"{r['tflops']:.0f} TFLOP/s", "", "")
            for mode, r in (res.get("limit") or {}).items() if isinstance(r, dict) and "tflops" in r]
    for r in res.get("model") if isinstance(res.get("model"), list) else []:
        if isinstance(r, dict) and r.get("width") == 64:
            rows.append(("gpu model", f"{r['what']} 572 w64 b{r['batch']} {r['variant']}", "", f"{r['ms_median']:.2f} ms",
                         "", f"{r['tflops']:.0f} TFLOP/s, {card}"))
    monai = {}
    predict_rows = [r for r in res.get("predict") or [] if isinstance(r, dict)] if isinstance(
        res.get("predict"), list) else []
    for r in predict_rows:
        if r.get("status") == "ok" and r["variant"].startswith("MONAI"):
            best = monai.get(r["size"])
            if best is None or r["ms_median"] < best["ms_median"]:
                monai[r["size"]] = r
    for r in predict_rows:
        if r.get("status") != "ok" or r["variant"].startswith("MONAI"):
            continue
        peer = monai.get(r["size"])
        target = f"< {TARGET_GPU_512_MS:.0f} ms (H100)" if (r["size"], r["width"]) == (512, 64) else "vs peer"
        rows.append(("gpu predict", f"{r['case']} {r['variant']}", target, f"{r['ms_median']:.2f} ms",
                     f"{peer['variant']}: {peer['ms_median']:.2f} ms" if peer else "",
                     f"{r['mpix_per_s']:.1f} MPix/s, peak {r['peak_gpu_mb']:.0f} MB, {card}"))
    return rows


FORMATTERS = {"gpu": rows_gpu, "metrics": rows_metrics, "limit": rows_limit, "model": rows_model, "inference": rows_inference, "augment": rows_augment,
              "weights": rows_weights, "pipeline": rows_pipeline}


def format_table(rows: list[tuple], header: str) -> str:
    cols = ("part", "case", "target", "measured", "peer", "note")
    widths = [max(len(str(r[i])) for r in [cols, *rows]) for i in range(len(cols))]
    widths[4] = min(widths[4], 60)
    line = lambda r: "  ".join(str(v)[: widths[i]].ljust(widths[i]) for i, v in enumerate(r)).rstrip()  # noqa: E731
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([header, line(cols), sep, *(line(r) for r in rows)])


# ---------------------------------------------------------------- driver


def run_part(name: str, quick: bool, state: dict):
    if name == "limit":
        return bench_model.limit(quick)
    if name == "model":
        lim = state.get("limit") or bench_model.limit(quick)
        return bench_model.model(quick, limit_gflops=lim["gflops"])
    if name == "pipeline":
        return bench_model.pipeline(quick)
    if name == "inference":
        return load_script("bench_inference").run(quick)
    if name == "gpu":
        import torch

        if not torch.cuda.is_available():
            return {"skipped": "no CUDA device (see benchmarks/README.md for the H200 numbers)"}
        module = load_script("bench_gpu")
        return module.run(module.Settings(quick=quick), ["limit", "check", "model", "predict"], None)
    module = load_script(f"bench_{name}")
    if name == "weights":
        rows_weights.target_ms = getattr(module, "TARGET_MS", None)
    return module.run(quick)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller images, no compile/ONNX")
    parser.add_argument("--only", help="comma-separated parts: " + ",".join(PARTS))
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")

    machine = bench_model.machine_info()
    machine["load_average_start"] = os.getloadavg()[0]
    started = time.perf_counter()
    state, table, errors, seconds = {}, [], {}, {}
    for name in names:
        print(f"[{name}] ...", flush=True)
        t0 = time.perf_counter()
        try:
            state[name] = run_part(name, args.quick, state)
            formatter = FORMATTERS.get(name)
            table += formatter(state[name]) if formatter else rows_generic(name, state[name])
        except Exception as err:  # one broken part must not hide the others
            errors[name] = traceback.format_exc()
            table.append((name, "(failed)", "", f"{type(err).__name__}: {str(err).splitlines()[0][:90]}" if str(err) else type(err).__name__, "", ""))
        seconds[name] = time.perf_counter() - t0
    machine["load_average_end"] = os.getloadavg()[0]

    header = (f"unetkit benchmarks{' (--quick)' if args.quick else ''}: {machine['cpu']}, {machine['cores']} cores, "
              f"GPU {machine['gpu']}, torch {machine['torch']}, numpy {machine['numpy']}, "
              f"{machine['torch_threads']} torch threads, load {machine['load_average_start']:.1f}"
              f"->{machine['load_average_end']:.1f}, {time.perf_counter() - started:.0f} s")
    text = format_table(table, header)
    print()
    print(text)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    record = {"quick": args.quick, "parts": names, "machine": machine, "seconds": seconds,
              "table": [dict(zip(("part", "case", "target", "measured", "peer", "note"), r)) for r in table],
              "table_text": text, "errors": errors, "results": state}
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(record, indent=2, default=str) + "\n"
    (RESULTS / f"run-{stamp}.json").write_text(payload)
    (RESULTS / "latest.json").write_text(payload)
    print(f"\nwrote {RESULTS / f'run-{stamp}.json'} and latest.json")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
