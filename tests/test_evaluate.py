"""Tests of unetkit.evaluate: reading and pairing files, scoring, output."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from unetkit import evaluate as E
from unetkit import metrics as M


def _gt(seed: int, shape=(40, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (ndi.gaussian_filter(rng.random(shape), 2.5) > 0.5).astype(np.uint8) * 255


def _prob(gt: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    soft = ndi.gaussian_filter((gt > 0).astype(np.float32), 1.5) + rng.normal(0, 0.05, gt.shape)
    return np.clip(soft, 0, 1).astype(np.float32)


@pytest.fixture
def folders(tmp_path):
    """pred/ (float TIFF probabilities) and gt/ (0/255 PNG), 3 images."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    gts, probs = [], []
    for i in range(3):
        g = _gt(i)
        p = _prob(g, 10 + i)
        iio.imwrite(gt / f"{i:02d}.png", g)
        tifffile.imwrite(pred / f"{i:02d}.tif", p)
        gts.append(g)
        probs.append(p)
    return pred, gt, np.stack(probs), np.stack(gts)


def test_load_pairs_matches_by_stem(folders):
    pred, gt, probs, gts = folders
    pairs = E.load_pairs(pred, gt)
    assert [p.name for p in pairs] == ["00", "01", "02"]
    for pair, p, g in zip(pairs, probs, gts):
        np.testing.assert_array_equal(pair.pred, p)
        np.testing.assert_array_equal(pair.gt, g)


def test_evaluate_paths_on_folders_equals_array_sweep(folders):
    pred, gt, probs, gts = folders
    res = E.evaluate_paths(pred, gt)
    ref = M.evaluate_probabilities(probs, gts)
    for name in M.METRIC_NAMES:
        assert res[name] == pytest.approx(ref[name])
        assert res["at_0.5"][name] == pytest.approx(ref["at_0.5"][name])
    assert res["inputs"]["n_images"] == 3 and res["inputs"]["pred_kind"] == "probability"
    assert "instances" not in res
    table = E.format_table(res)
    for name in M.METRIC_NAMES:
        assert name in table
    assert "at t=0.5" in table


def test_stack_against_folder_matches_by_order(folders, tmp_path):
    pred, gt, probs, gts = folders
    stack = tmp_path / "pred_stack.tif"
    tifffile.imwrite(stack, probs, photometric="minisblack")  # 3 pages: pred_stack[0..2]
    pairs = E.load_pairs(stack, gt)
    assert len(pairs) == 3
    np.testing.assert_array_equal(pairs[2].pred, probs[2])
    np.testing.assert_array_equal(pairs[2].gt, gts[2])
    res = E.evaluate_paths(stack, gt, metrics=["pixel_error"])
    ref = M.evaluate_probabilities(probs, gts, metrics=["pixel_error"])
    assert res["pixel_error"] == pytest.approx(ref["pixel_error"])


def test_unmatched_stems_with_equal_counts_pair_in_natural_order(tmp_path):
    pred, gt = tmp_path / "p", tmp_path / "g"
    pred.mkdir()
    gt.mkdir()
    for i, n in enumerate([2, 10, 1]):
        g = _gt(n)
        iio.imwrite(gt / f"label_{n}.png", g)
        np.save(pred / f"prob_{n}.npy", _prob(g, n))
    pairs = E.load_pairs(pred, gt)
    assert [p.name for p in pairs] == ["prob_1", "prob_2", "prob_10"]
    np.testing.assert_array_equal(pairs[2].gt, _gt(10))


def test_mismatched_counts_raise(folders):
    pred, gt, _, _ = folders
    (gt / "02.png").rename(gt / "other.png")  # partial name match
    with pytest.raises(ValueError, match="match only in part"):
        E.load_pairs(pred, gt)
    (gt / "other.png").unlink()
    (pred / "02.tif").rename(pred / "zz.tif")
    with pytest.raises(ValueError, match="match only in part"):
        E.load_pairs(pred, gt)


def test_mismatched_counts_without_common_names_raise(tmp_path, folders):
    pred, gt, probs, _ = folders
    stack = tmp_path / "two.tif"
    tifffile.imwrite(stack, probs[:2], photometric="minisblack")
    with pytest.raises(ValueError, match="prediction has 2 images and ground truth 3"):
        E.load_pairs(stack, gt)


def test_mismatched_shapes_raise(folders):
    pred, gt, probs, _ = folders
    tifffile.imwrite(pred / "01.tif", probs[1][:30])
    with pytest.raises(ValueError, match=r"image '01'.*\(30, 48\).*\(40, 48\)"):
        E.evaluate_paths(pred, gt)


def test_missing_or_empty_inputs_raise(tmp_path, folders):
    pred, gt, _, _ = folders
    with pytest.raises(ValueError, match="does not exist"):
        E.load_pairs(tmp_path / "nope", gt)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    with pytest.raises(ValueError, match="holds no images"):
        E.load_pairs(empty, gt)


def test_binary_masks_0_255_and_0_1(tmp_path, folders):
    _, gt, probs, gts = folders
    for scale, name in ((255, "m255"), (1, "m1")):
        d = tmp_path / name
        d.mkdir()
        for i, p in enumerate(probs):
            iio.imwrite(d / f"{i:02d}.png", ((p > 0.5) * scale).astype(np.uint8))
        res = E.evaluate_paths(d, gt, metrics=["pixel_error", "rand_error"])
        assert res["inputs"]["pred_kind"] == "binary"
        assert res["pixel_error"] == pytest.approx(M.pixel_error(gts > 0, probs > 0.5))
        # a mask binarises alike at every t < 1
        assert len(set(res["curves"]["pixel_error"][:-1])) == 1


def test_perfect_masks_score_perfectly(tmp_path, folders):
    _, gt, _, _ = folders
    res = E.evaluate_paths(gt, gt)
    for name in ("pixel_error", "rand_error", "warping_error"):
        assert res[name] == 0.0
    for name in ("v_rand", "v_info", "iou", "dice"):
        assert res[name] == pytest.approx(1.0)


def test_instance_predictions_get_seg_and_ap50(tmp_path, folders):
    _, gt, _, gts = folders
    d = tmp_path / "inst"
    d.mkdir()
    for i, g in enumerate(gts):
        lab = M.connected_components(g > 0).astype(np.uint16)
        tifffile.imwrite(d / f"{i:02d}.tif", lab)
    res = E.evaluate_paths(d, gt, warping=False)
    assert res["inputs"]["pred_kind"] == "instances"
    inst = res["instances"]
    assert inst["seg"] == 1.0 and inst["ap50"] == 1.0 and inst["false_positives"] == 0
    assert res["pixel_error"] == 0.0 and res["warping_error"] is None
    assert "seg" in E.format_table(res)


def test_instance_metrics_against_labelled_gt(tmp_path):
    # GT given as instance labels (touching objects) is used as is.
    gt = np.zeros((20, 20), np.uint16)
    gt[2:10, 2:10] = 1
    gt[2:10, 10:18] = 2  # touches object 1: 4-connected components would merge them
    pred = gt.copy()
    pred[gt == 2] = 1  # prediction merges the two
    pred[15:18, 15:18] = 3
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    tifffile.imwrite(tmp_path / "p" / "a.tif", pred)
    tifffile.imwrite(tmp_path / "g" / "a.tif", gt)
    res = E.evaluate_paths(tmp_path / "p", tmp_path / "g", metrics=["seg", "ap50"])
    inst = res["instances"]
    assert inst["n_true"] == 2 and inst["n_pred"] == 2
    # Both references lie inside the merged object: each matches it with J = 64 / 128.
    assert inst["seg"] == pytest.approx(0.5)
    assert inst["ap50"] == 0.0
    assert res["pixel_error"] is None


def test_seg_on_probabilities_uses_components(folders):
    pred, gt, probs, gts = folders
    res = E.evaluate_paths(pred, gt, metrics=["seg"])
    expected = M.evaluate_instances(M.connected_components(probs > 0.5), M.connected_components(gts > 0))
    assert res["instances"]["seg"] == pytest.approx(expected["seg"])
    assert res["instances"]["source"] == "components of p > 0.5"


def test_bad_predictions_raise(tmp_path, folders):
    _, gt, probs, _ = folders
    d = tmp_path / "bad"
    d.mkdir()
    for i, p in enumerate(probs):
        tifffile.imwrite(d / f"{i:02d}.tif", p * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.evaluate_paths(d, gt)
    with pytest.raises(ValueError, match="unknown metric"):
        E.evaluate_paths(gt, gt, metrics=["pixel_eror"])


def test_write_json_is_atomic_and_strict(tmp_path, folders):
    pred, gt, _, _ = folders
    res = E.evaluate_paths(pred, gt, metrics=["pixel_error", "v_rand"])
    res["extra"] = {"nan": math.nan, "np": np.float32(0.5), "arr": np.arange(3)}
    out = E.write_json(res, tmp_path / "sub" / "result.json")
    data = json.loads(out.read_text())  # strict JSON: NaN became null
    assert data["pixel_error"] == pytest.approx(res["pixel_error"])
    assert data["extra"] == {"nan": None, "np": 0.5, "arr": [0, 1, 2]}
    assert data["warping_error"] is None
    assert [p.name for p in out.parent.iterdir()] == ["result.json"]  # no temporary file left
    E.write_json({"a": 1}, out)  # replacing an existing file
    assert json.loads(out.read_text()) == {"a": 1}


def test_headline_scores_are_the_best_and_t05_values_of_the_result(folders):
    pred, gt = folders[:2]
    result = E.evaluate_paths(pred, gt)
    head = E.headline_scores(result)
    assert list(head) == ["best", "at_0.5"]
    assert list(head["best"]) == list(E.HEADLINE_METRICS)
    for k in E.HEADLINE_METRICS:
        assert head["best"][k] == result[k] and head["at_0.5"][k] == result["at_0.5"][k]
    assert E.headline_scores(result, ["rand_error"]) == {
        "best": {"rand_error": result["rand_error"]}, "at_0.5": {"rand_error": result["at_0.5"]["rand_error"]}}
