"""Mean and spread over seeds of recorded ISBI runs: the multi-seed tables of README.md come from here.

Each record (``records/NAME/summary.json``, written by ``run_arm.py --record`` or
``benchmarks/peer_monai_isbi.py``) is grouped by its name without the trailing
``_seedN``; for every group and scoring mode (best over the threshold sweep or
t = 0.5, with or without 8-fold TTA) the table gives the mean, the sample
standard deviation and the range over seeds. ``--paired A B`` compares two
groups seed by seed (the seeds both have): the differences A - B, their mean
and SD, how many seeds A wins, and a paired t-test. ``--compute`` lists each
record's compute per training step (seconds, the mean of ``compute_s_per_step``
in its ``metrics.jsonl`` over ``COMPUTE_WINDOW``): how fast the machine ran it.
A group may join record names with ``+`` (one recipe recorded under two names,
each seed once); a name with its ``_seedN`` is that one record. Usage::

    python examples/isbi2012/summarize_records.py default_20m monai_20m [--json out.json]
    python examples/isbi2012/summarize_records.py --paired dropout05_60m dropout0_60m
    python examples/isbi2012/summarize_records.py t380bf16_dropout0_60m+t380bf16_rule300_60m monai_60m
    python examples/isbi2012/summarize_records.py --compute screen18/base_60m_avx2 screen18/rot90_60m_avx2
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

RECORDS = Path(__file__).resolve().parent / "records"
LOWER_IS_BETTER = {"rand_error": True, "warping_error": True, "v_rand": False, "pixel_error": True}
METRICS = ("rand_error", "warping_error", "v_rand", "pixel_error")
MODES = (("best", "best over t"), ("at_0.5", "t = 0.5"),
         ("best_tta", "TTA, best over t"), ("at_0.5_tta", "TTA, t = 0.5"))
DIGITS = {"rand_error": 4, "warping_error": 6, "v_rand": 4, "pixel_error": 4}
COMPUTE_WINDOW = (2000, 4000)  # training steps over which a record's compute per step is averaged


def load_group(prefix: str, records: Path = RECORDS) -> dict[int, dict]:
    """Summaries of ``records/PREFIX_seedN/summary.json`` keyed by seed N (ascending); PREFIX may hold a folder.

    PREFIX may also name one record, ``NAME_seedN``: a group of that one seed (to join one seed of a group).
    Each summary gains ``"record"``: its folder, for reading the record's other files.
    """
    one = re.fullmatch(r".+_seed(\d+)", prefix)
    if one and (records / prefix / "summary.json").is_file():
        paths = {int(one.group(1)): records / prefix / "summary.json"}
    else:
        paths = {}
        for path in records.glob(f"{prefix}_seed*/summary.json"):
            match = re.fullmatch(re.escape(prefix) + r"_seed(\d+)", path.parent.relative_to(records).as_posix())
            if match:
                paths[int(match.group(1))] = path
    return {seed: {**json.loads(path.read_text()), "record": path.parent} for seed, path in sorted(paths.items())}


def load_joined(name: str, records: Path = RECORDS) -> dict[int, dict]:
    """``load_group`` over the ``+``-joined prefixes of ``name``, merged by seed (empty if any prefix has none).

    Raises ValueError when two prefixes hold the same seed: a group has one run per seed.
    """
    merged: dict[int, dict] = {}
    for prefix in name.split("+"):
        group = load_group(prefix, records)
        if not group:
            return {}
        clash = sorted(set(group) & set(merged))
        if clash:
            raise ValueError(f"{name}: seed {clash[0]} is recorded twice; join groups whose seeds differ")
        merged.update(group)
    return dict(sorted(merged.items()))


def compute_per_step(record: Path, window: tuple[int, int] = COMPUTE_WINDOW) -> float | None:
    """Mean ``compute_s_per_step`` (seconds) of the training log rows of ``record/metrics.jsonl`` whose step lies in
    ``window`` (inclusive); None when the log does not reach the window's last step (a run that ended inside or
    before it, or a log without the key) or the record keeps no training log (the peer's)."""
    log = record / "metrics.jsonl"
    if not log.is_file():
        return None
    first, last = window
    values, reached = [], 0
    for line in log.read_text().splitlines():
        row = json.loads(line)
        if "compute_s_per_step" in row:
            reached = max(reached, row["step"])
            if first <= row["step"] <= last:
                values.append(row["compute_s_per_step"])
    return statistics.fmean(values) if values and reached >= last else None


def compute_markdown(groups: dict[str, dict[int, dict]]) -> str:
    """One row per record: its group, seed, steps and compute per step over ``COMPUTE_WINDOW``."""
    first, last = COMPUTE_WINDOW
    lines = [f"| run | seed | steps | compute per step, steps {first:,}-{last:,} (s) |", "|---|---|---|---|"]
    for prefix, by_seed in groups.items():
        for seed, summary in by_seed.items():
            seconds = compute_per_step(summary["record"])
            cell = "n/a" if seconds is None else f"{seconds:.3f}"
            lines.append(f"| `{prefix}` | {seed} | {summary['steps']:,} | {cell} |")
    return "\n".join(lines)


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


def paired(a: dict[int, dict], b: dict[int, dict], mode: str = "best_tta") -> dict:
    """Seed-by-seed comparison of two groups in one scoring mode, over the seeds both have.

    Returns ``{"seeds": [...], metric: {"differences": [a - b per seed], "mean", "sd", "a_wins", "t", "p"}}``;
    ``a_wins`` counts seeds where A is strictly better (lower, or higher for V_rand); ``t`` and ``p`` are the
    two-sided paired t-test (``scipy.stats.ttest_rel``), None with fewer than two seeds.
    """
    from scipy.stats import ttest_rel

    seeds = sorted(set(a) & set(b))
    out: dict = {"seeds": seeds}
    for metric in METRICS:
        xs = [a[s][mode][metric] for s in seeds]
        ys = [b[s][mode][metric] for s in seeds]
        diffs = [x - y for x, y in zip(xs, ys)]
        better = (lambda d: d < 0) if LOWER_IS_BETTER[metric] else (lambda d: d > 0)
        test = ttest_rel(xs, ys) if len(seeds) > 1 else None
        out[metric] = {
            "differences": diffs,
            "mean": statistics.fmean(diffs) if diffs else float("nan"),
            "sd": statistics.stdev(diffs) if len(diffs) > 1 else 0.0,
            "a_wins": sum(better(d) for d in diffs),
            "t": None if test is None else float(test.statistic),
            "p": None if test is None else float(test.pvalue),
        }
    return out


def paired_markdown(name_a: str, name_b: str, comparison: dict, mode: str = "best_tta") -> str:
    """One row per metric: the per-seed differences A - B, mean +- sd, seeds A wins, paired t and p."""
    label = dict(MODES)[mode]
    seeds = comparison["seeds"]
    lines = [f"`{name_a}` - `{name_b}`, {label}, seeds {','.join(map(str, seeds))}",
             "", "| metric | A - B per seed | mean ± sd | A better on | paired t | p |", "|---|---|---|---|---|---|"]
    for metric in METRICS:
        d, c = DIGITS[metric], comparison[metric]
        per_seed = ", ".join(f"{x:+.{d}f}" for x in c["differences"])
        t = "n/a" if c["t"] is None else f"{c['t']:.2f}"
        p = "n/a" if c["p"] is None else f"{c['p']:.2f}"
        lines.append(f"| {metric} | {per_seed} | {c['mean']:+.{d}f} ± {c['sd']:.{d}f} | "
                     f"{c['a_wins']} of {len(seeds)} | {t} | {p} |")
    return "\n".join(lines)


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
    parser.add_argument("prefixes", nargs="*",
                        help="record names without _seedN, e.g. default_20m, or one record with it; "
                             "A+B joins two names into one group")
    parser.add_argument("--paired", nargs=2, metavar=("A", "B"), help="compare two groups seed by seed")
    parser.add_argument("--mode", default="best_tta", choices=[m for m, _ in MODES],
                        help="scoring mode of the paired comparison (default: TTA, best over t)")
    parser.add_argument("--compute", action="store_true",
                        help="list each record's compute per step instead of the metrics table")
    parser.add_argument("--json", help="also write the aggregates here")
    args = parser.parse_args()
    if not args.prefixes and not args.paired:
        parser.error("name record groups to summarise, or --paired A B")
    if args.compute and not args.prefixes:
        parser.error("--compute needs at least one record group name (it does not use --paired)")
    if args.compute and args.json:
        parser.error("--json writes the metrics' aggregates: run it without --compute")
    try:
        groups = {p: load_joined(p) for p in [*args.prefixes, *(args.paired or [])]}
    except ValueError as error:
        parser.error(str(error))
    missing = [p for p, g in groups.items() if not g]
    if missing:
        parser.error(f"no records named {', '.join(m + '_seedN' for m in missing)} under {RECORDS}")
    if args.prefixes:
        table = compute_markdown if args.compute else markdown
        print(table({p: groups[p] for p in args.prefixes}))
    if args.paired:
        name_a, name_b = args.paired
        comparison = paired(groups[name_a], groups[name_b], args.mode)
        if not comparison["seeds"]:
            parser.error(f"{name_a} and {name_b} have no seed in common")
        print(("\n" if args.prefixes else "") + paired_markdown(name_a, name_b, comparison, args.mode))
    if args.json and args.prefixes:
        payload = {p: {"seeds": list(groups[p]), **aggregate(list(groups[p].values()))} for p in args.prefixes}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
