"""The multi-seed table script: means and sample SDs over seeds equal hand-computed values."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "isbi2012" / "summarize_records.py"


@pytest.fixture(scope="module")
def summarize():
    spec = importlib.util.spec_from_file_location("summarize_records", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
