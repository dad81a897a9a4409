"""One arm of the ISBI 2012 experiments: train, predict slices 20-24 with the FINAL weights, score with and without TTA.

The final weights (``last.pt``; the weight average when ``train.ema`` > 0) are
scored, never a checkpoint chosen on slices 20-24, so the numbers are not
tuned on the slices they report. Usage::

    UNETKIT_DATA=../shared/data python examples/isbi2012/run_arm.py RUN_DIR [--record NAME] \\
        [--budget 20m] [--set section.key=value ...]

Writes RUN_DIR/{config.json, metrics.jsonl, last.pt, pred/, pred_tta/, scores.json, scores_tta.json,
summary.json}; with ``--record NAME`` the small files (config, log, scores, summary) are copied to
examples/isbi2012/records/NAME/ so that every table row can be traced to its run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VAL = range(20, 25)
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # machine.py: the one description of the machine


def unetkit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "unetkit", *args], check=True)


def score(pred_dir: Path, labels: Path, out: Path) -> dict:
    from unetkit.evaluate import evaluate_paths
    from unetkit.io import write_json

    probs = pred_dir.parent / (pred_dir.name + "_prob")
    probs.mkdir(exist_ok=True)
    for f in pred_dir.glob("*_prob.tif"):
        shutil.copy(f, probs / f.name.replace("_prob", ""))
    result = evaluate_paths(probs, labels)
    write_json(result, out)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--config", default=str(HERE / "config.toml"))
    parser.add_argument("--budget")
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--record", help="copy config, log and scores to examples/isbi2012/records/NAME")
    parser.add_argument("--skip-train", action="store_true", help="score an existing RUN_DIR/last.pt again")
    args = parser.parse_args()
    from unetkit.evaluate import headline_scores

    data = Path(os.environ["UNETKIT_DATA"]).resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = ["--budget", args.budget] if args.budget else []
    if not args.skip_train:
        unetkit("train", args.config, "--out", str(out), "--quiet", *extra, *[x for s in args.set for x in ("--set", s)])
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train_s = max(r["wall_time_s"] for r in log)  # the run's own clock (validations included)
    images = [str(data / "isbi2012" / "train" / "images" / f"{i:02d}.png") for i in VAL]
    labels = out / "val_labels"
    labels.mkdir(exist_ok=True)
    for i in VAL:
        shutil.copy(data / "isbi2012" / "train" / "labels" / f"{i:02d}.png", labels / f"{i:02d}.png")
    from machine import machine_info

    summary = {"train_wall_s": train_s, "overrides": args.set, "budget": args.budget, "machine": machine_info()}
    for tag, flags in (("", []), ("_tta", ["--tta"])):
        unetkit("predict", str(out / "last.pt"), *images, "--out", str(out / f"pred{tag}"), "--quiet", *flags)
        result = score(out / f"pred{tag}", labels, out / f"scores{tag}.json")
        summary.update({f"{mode}{tag}": scores for mode, scores in headline_scores(result).items()})
    summary["steps"] = max(r["step"] for r in log)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({"run": str(out), "steps": summary["steps"], "train_s": round(train_s),
                      **{k: round(v, 5) for k, v in summary["best_tta"].items()}}), flush=True)
    if args.record:
        dest = HERE / "records" / args.record
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "metrics.jsonl", "scores.json", "scores_tta.json", "summary.json"):
            shutil.copy(out / name, dest / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
