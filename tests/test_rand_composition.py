"""The Rand-error composition: membranes drawn too thick are told apart from cells cut apart or merged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage.io import imsave


@pytest.fixture(scope="module")
def composition(example_script):
    return example_script("examples/isbi2012/rand_composition.py")


def _run_dir(tmp_path: Path, cut: bool = False) -> Path:
    """A run_arm.py-like folder: 4x4 GT cells of 13x13 px between 3-px membranes; the map draws each cell 1 px
    smaller on every side (membranes 5 px thick), and with ``cut`` a 1-px membrane across the first cell."""
    cell = np.zeros((64, 64), bool)
    prob = np.zeros((64, 64), np.float32)
    for y in range(4):
        for x in range(4):
            cell[3 + 16 * y:16 + 16 * y, 3 + 16 * x:16 + 16 * x] = True
            prob[4 + 16 * y:15 + 16 * y, 4 + 16 * x:15 + 16 * x] = 0.9
    if cut:
        prob[9, :16] = 0.0
    for sub in ("pred_tta_prob", "val_labels"):
        (tmp_path / sub).mkdir()
    tifffile.imwrite(tmp_path / "pred_tta_prob" / "20.tif", prob)
    imsave(tmp_path / "val_labels" / "20.png", (cell * 255).astype(np.uint8), check_contrast=False)
    return tmp_path


def test_thick_membranes_are_all_of_the_error_when_the_topology_is_right(composition, tmp_path):
    from unetkit.evaluate import evaluate_paths

    run = _run_dir(tmp_path)
    values = composition.rand_composition(run)
    assert values["rand_error"] == pytest.approx(evaluate_paths(run / "pred_tta_prob", run / "val_labels")
                                                 ["rand_error"])
    # per GT cell of 169 px: 121 px in one predicted region, 48 singletons: A = 169^2, C = B = 121^2 + 48
    a, c = 169 ** 2, 121 ** 2 + 48
    assert values["threshold"] == 0.0  # every t below 0.9 binarises alike: the lowest is kept
    assert values["rand_error"] == pytest.approx(1 - 2 * c / (a + c))
    assert (values["split"], values["merge"]) == pytest.approx((c / a, 1.0))
    assert values["cell_called_membrane"] == pytest.approx(48 / 169)
    assert values["rand_error_membrane_given_away"] == 0.0


def test_a_cut_cell_stays_when_membranes_are_given_away(composition, tmp_path):
    values = composition.rand_composition(_run_dir(tmp_path, cut=True))
    # the first GT cell (rows 3-15) is cut at row 9: 6 and 7 of its 13 rows on each side once given away
    per_cell = 16 * 169 ** 2
    assert values["rand_error_membrane_given_away"] == pytest.approx(
        1 - 2 * (per_cell - 2 * 6 * 7 * 13 ** 2) / (2 * per_cell - 2 * 6 * 7 * 13 ** 2))
    assert values["merge"] == 1.0


def test_a_missing_map_folder_is_one_clear_error(composition, tmp_path):
    done = subprocess.run([sys.executable, composition.__file__, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(
        f"no such folder: {tmp_path / 'pred_tta_prob'}, {tmp_path / 'val_labels'}")
