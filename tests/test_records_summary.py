"""The multi-seed table script: means and sample SDs over seeds equal hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def summarize(example_script):
    return example_script("examples/isbi2012/summarize_records.py")


def _summary(rand: float, steps: int) -> dict:
    scores = {"rand_error": rand, "warping_error": rand / 100, "v_rand": 1 - rand, "pixel_error": rand / 2}
    return {"steps": steps, **{mode: dict(scores) for mode in ("best", "at_0.5", "best_tta", "at_0.5_tta")}}


def test_groups_by_seed_and_aggregates_mean_and_sample_sd(summarize, tmp_path):
    for seed, rand in ((0, 0.10), (1, 0.14), (2, 0.12)):
        (tmp_path / f"arm_20m_seed{seed}").mkdir()
        (tmp_path / f"arm_20m_seed{seed}" / "summary.json").write_text(json.dumps(_summary(rand, 100 + seed)))
    (tmp_path / "arm_20m_seedless").mkdir()  # not a seed: ignored
    (tmp_path / "arm_20m_seedless" / "summary.json").write_text(json.dumps(_summary(0.9, 1)))
    group = summarize.load_group("arm_20m", tmp_path)
    assert list(group) == [0, 1, 2]
    stats = summarize.aggregate(list(group.values()))["best_tta"]["rand_error"]
    assert stats["mean"] == pytest.approx(0.12)
    assert stats["sd"] == pytest.approx(0.02)  # sqrt(((-.02)^2 + .02^2 + 0) / 2)
    assert (stats["min"], stats["max"]) == (0.10, 0.14)
    row = summarize.markdown({"arm_20m": group}).splitlines()[2]
    assert "0.1200 ± 0.0200 (0.1000-0.1400)" in row and "| 0,1,2 | 101 |" in row


def test_a_single_seed_has_zero_spread(summarize, tmp_path):
    (tmp_path / "one_seed0").mkdir()
    (tmp_path / "one_seed0" / "summary.json").write_text(json.dumps(_summary(0.2, 5)))
    stats = summarize.aggregate(list(summarize.load_group("one", tmp_path).values()))
    assert stats["at_0.5"]["v_rand"] == {"mean": 0.8, "sd": 0.0, "min": 0.8, "max": 0.8, "values": [0.8]}


def _write_group(root: Path, prefix: str, rands: dict[int, float]) -> None:
    for seed, rand in rands.items():
        (root / f"{prefix}_seed{seed}").mkdir()
        (root / f"{prefix}_seed{seed}" / "summary.json").write_text(json.dumps(_summary(rand, 10)))


def test_paired_comparison_equals_a_hand_computed_t_test(summarize, tmp_path):
    _write_group(tmp_path, "a", {0: 0.10, 1: 0.14, 2: 0.12, 3: 0.50})  # seed 3 has no partner: left out
    _write_group(tmp_path, "b", {0: 0.12, 1: 0.15, 2: 0.11})
    result = summarize.paired(summarize.load_group("a", tmp_path), summarize.load_group("b", tmp_path))
    assert result["seeds"] == [0, 1, 2]
    rand = result["rand_error"]
    assert rand["differences"] == pytest.approx([-0.02, -0.01, 0.01])
    assert rand["mean"] == pytest.approx(-0.02 / 3)
    sd = (((-0.04 / 3) ** 2 + (-0.01 / 3) ** 2 + (0.05 / 3) ** 2) / 2) ** 0.5
    assert rand["sd"] == pytest.approx(sd)
    t = (-0.02 / 3) / (sd / 3 ** 0.5)
    assert rand["t"] == pytest.approx(t)
    # two degrees of freedom: the two-sided p of Student's t is 1 - |t| / sqrt(2 + t^2)
    assert rand["p"] == pytest.approx(1 - abs(t) / (2 + t * t) ** 0.5)
    assert rand["a_wins"] == 2  # lower Rand error wins
    assert result["v_rand"]["a_wins"] == 2  # V_rand = 1 - Rand here: higher wins, the same two seeds
    table = summarize.paired_markdown("a", "b", result)
    assert "| rand_error | -0.0200, -0.0100, +0.0100 | -0.0067 ± 0.0153 | 2 of 3 | -0.76 | 0.53 |" in table


def test_paired_without_a_common_seed_is_one_clear_error(summarize):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, summarize.__file__, "--paired", "no_such_arm", "other_arm"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "no records named no_such_arm_seedN, other_arm_seedN" in done.stderr


def test_a_joined_group_merges_seeds_and_refuses_a_seed_recorded_twice(summarize, tmp_path):
    _write_group(tmp_path, "first", {0: 0.10})
    _write_group(tmp_path, "renamed", {1: 0.14, 2: 0.12})
    joined = summarize.load_joined("first+renamed", tmp_path)
    assert list(joined) == [0, 1, 2]
    assert summarize.aggregate(list(joined.values()))["best_tta"]["rand_error"]["mean"] == pytest.approx(0.12)
    assert summarize.load_joined("first+absent", tmp_path) == {}
    one = summarize.load_joined("first+renamed_seed2", tmp_path)  # one record of a group joins as its seed
    assert list(one) == [0, 2] and one[2]["best_tta"]["rand_error"] == pytest.approx(0.12)
    _write_group(tmp_path, "again", {0: 0.30})
    with pytest.raises(ValueError, match="seed 0 is recorded twice"):
        summarize.load_joined("first+again", tmp_path)


def test_compute_per_step_is_the_mean_over_the_window_and_none_without_a_log(summarize, tmp_path):
    _write_group(tmp_path, "timed", {0: 0.10})
    record = tmp_path / "timed_seed0"
    rows = [{"step": 1990, "compute_s_per_step": 9.0},          # before the window: left out
            {"step": 2000, "compute_s_per_step": 0.2},
            {"step": 2000, "val": {"rand_error": 0.3}},          # a validation row: no compute key
            {"step": 3000, "compute_s_per_step": 0.3},
            {"step": 4000, "compute_s_per_step": 0.7},
            {"step": 4010, "compute_s_per_step": 9.0}]           # after it: left out
    (record / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    # both ends inclusive: 0.4 (a median gives 0.3, [2000, 4000) 0.25, (2000, 4000] 0.5)
    assert summarize.compute_per_step(record) == pytest.approx(0.4)
    assert summarize.compute_per_step(record, (3000, 5000)) is None  # a run that ended inside the window (4,010)
    assert summarize.compute_per_step(record, (5000, 6000)) is None  # a run that ended before the window
    group = summarize.load_group("timed", tmp_path)
    assert group[0]["record"] == record
    assert "| `timed` | 0 | 10 | 0.400 |" in summarize.compute_markdown({"timed": group})
    _write_group(tmp_path, "peer", {0: 0.10})  # the peer's records keep no training log
    assert summarize.compute_per_step(tmp_path / "peer_seed0") is None
    assert "| `peer` | 0 | 10 | n/a |" in summarize.compute_markdown({"peer": summarize.load_group("peer", tmp_path)})
