"""Mean and spread over seeds of recorded ISBI runs: the multi-seed tables of README.md come from here.

Each record (``records/NAME/summary.json``, written by ``run_arm.py --record`` or
``benchmarks/peer_monai_isbi.py``) is grouped by its name without the trailing
``_seedN``; for every group and scoring mode (best over the threshold sweep or
t = 0.5, with or without 8-fold TTA) the table gives the mean, the sample
standard deviation and the range over seeds. Usage::

    python examples/isbi2012/summarize_records.py default_20m monai_20m [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

RECORDS = Path(__file__).resolve().parent / "records"
METRICS = ("rand_error", "warping_error", "v_rand", "pixel_error")
MODES = (("best", "best over t"), ("at_0.5", "t = 0.5"), ("best_tta", "TTA, best over t"), ("at_0.5_tta", "TTA, t = 0.5"))
DIGITS = {"rand_error": 4, "warping_error": 6, "v_rand": 4, "pixel_error": 4}


def load_group(prefix: str, records: Path = RECORDS) -> dict[int, dict]:
    """Summaries of ``records/PREFIX_seedN/summary.json`` keyed by seed N (ascending); PREFIX may hold a folder."""
    found = {}
    for path in records.glob(f"{prefix}_seed*/summary.json"):
        match = re.fullmatch(re.escape(prefix) + r"_seed(\d+)", path.parent.relative_to(records).as_posix())
        if match:
            found[int(match.group(1))] = json.loads(path.read_text())
    return dict(sorted(found.items()))


def aggregate(summaries: list[dict]) -> dict:
    """``{mode: {metric: {"mean", "sd", "min", "max", "values"}}}`` over a list of summaries (sd is 0 for one)."""
    out = {}
    for mode, _ in MODES:
        out[mode] = {}
        for metric in METRICS:
            values = [s[mode][metric] for s in summaries]
            out[mode][metric] = {
                "mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values), "max": max(values), "values": values,
            }
    return out


def markdown(groups: dict[str, dict[int, dict]]) -> str:
    """One row per group and scoring mode: mean +- sd (min-max) of each metric, seeds and steps."""
    lines = ["| run | scoring | seeds | steps (mean) | " + " | ".join(METRICS) + " |",
             "|---|---|---|---|" + "---|" * len(METRICS)]
    for prefix, by_seed in groups.items():
        stats = aggregate(list(by_seed.values()))
        steps = statistics.fmean(s["steps"] for s in by_seed.values())
        for mode, label in MODES:
            cells = []
            for metric in METRICS:
                d, st = DIGITS[metric], stats[mode][metric]
                cells.append(f"{st['mean']:.{d}f} ± {st['sd']:.{d}f} ({st['min']:.{d}f}-{st['max']:.{d}f})")
            seeds = ",".join(map(str, by_seed))
            lines.append(f"| `{prefix}` | {label} | {seeds} | {steps:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefixes", nargs="+", help="record names without _seedN, e.g. default_20m")
    parser.add_argument("--json", help="also write the aggregates here")
    args = parser.parse_args()
    groups = {p: load_group(p) for p in args.prefixes}
    missing = [p for p, g in groups.items() if not g]
    if missing:
        parser.error(f"no records named {', '.join(m + '_seedN' for m in missing)} under {RECORDS}")
    print(markdown(groups))
    if args.json:
        payload = {p: {"seeds": list(g), **aggregate(list(g.values()))} for p, g in groups.items()}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
