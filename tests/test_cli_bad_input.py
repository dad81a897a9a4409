"""Bad input to every command: exit status 2, exactly one line on stderr, no traceback, nothing created or changed.

Each case names a command line built from a small workspace of good and bad
files; the workspace is snapshotted (every path with its size and mtime)
before and after the call.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from unetkit import UNet, save_checkpoint
from unetkit.cli import main
from unetkit.io import write_png


def _smooth(shape, seed=0):
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 3)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace of good and bad inputs, shared by all cases (never changed by them)."""
    root = tmp_path_factory.mktemp("ws")
    torch_seed = __import__("torch").manual_seed(0)
    del torch_seed
    save_checkpoint(root / "model.pt", UNet(1, 2, base_features=2, depth=2))
    save_checkpoint(root / "model3.pt", UNet(3, 2, base_features=2, depth=2))
    save_checkpoint(root / "model4.pt", UNet(1, 4, base_features=2, depth=2))
    from unetkit.normalize import NormalizationConfig

    save_checkpoint(root / "model_dtype.pt", UNet(1, 2, base_features=2, depth=2,
                                                  normalization=NormalizationConfig("dtype")))
    write_png(root / "img.png", (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8))
    tifffile.imwrite(root / "img.tif", np.zeros((40, 50), np.uint8))
    rgb = np.random.default_rng(1).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    write_png(root / "rgb.png", rgb)
    nan = np.random.default_rng(2).random((40, 50)).astype(np.float32)
    nan[3, 4] = np.nan
    nan[5, 6] = np.inf
    tifffile.imwrite(root / "nan.tif", nan)
    (root / "bad.png").write_bytes(b"this is not a png")
    (root / "junk.pt").write_text("not a checkpoint")
    (root / "file.txt").write_text("a regular file")
    (root / "empty").mkdir()
    (root / "ckdir.pt").mkdir()
    labels = np.zeros((64, 64), np.uint16)
    labels[5:20, 5:20], labels[20:40, 5:30], labels[45:60, 40:60] = 1, 2, 3
    tifffile.imwrite(root / "labels.tif", labels)
    tifffile.imwrite(root / "raw.tif", (_smooth((64, 64)) * 4000).astype(np.uint16))
    tifffile.imwrite(root / "float_labels.tif", labels.astype(np.float32) + 0.5)
    for sub in ("images", "labels"):
        (root / sub).mkdir()
    for i in range(2):
        write_png(root / "images" / f"{i}.png", (np.random.default_rng(i).random((64, 64)) * 255).astype(np.uint8))
        write_png(root / "labels" / f"{i}.png", (labels > 0).astype(np.uint8) * 255)
    base = ('[model]\ndepth = 2\nbase_features = 2\n[data]\nimages = "images"\nlabels = "labels"\n'
            '[train]\nsteps = 2\ntile = 124\nplots = false\n')
    (root / "good.toml").write_text(base)
    (root / "badtile.toml").write_text(base.replace("tile = 124", "tile = 570"))
    (root / "unknown.toml").write_text(base + "stpes = 3\n")
    (root / "broken.toml").write_text("[model\ndepth = ")
    (root / "config.txt").write_text(base)
    (root / "nodata.toml").write_text(base.replace('images = "images"', 'images = "missing_images"'))
    (root / "select.toml").write_text(base.replace("[train]", 'select = "0,7"\n[train]'))
    gt = root / "gt"
    gt.mkdir()
    write_png(gt / "a.png", (labels[:40, :50] > 0).astype(np.uint8) * 255)
    pred = root / "pred"
    pred.mkdir()
    tifffile.imwrite(pred / "a.tif", np.full((40, 50), 0.5, np.float32))
    wrong = root / "pred_shape"
    wrong.mkdir()
    tifffile.imwrite(wrong / "a.tif", np.full((30, 50), 0.5, np.float32))
    over = root / "pred_range"
    over.mkdir()
    tifffile.imwrite(over / "a.tif", np.full((40, 50), 3.0, np.float32))
    return root


CASES = {
    # predict
    "predict: missing input": ["predict", "model.pt", "nope.png", "--out", "o"],
    "predict: unreadable image": ["predict", "model.pt", "img.png", "bad.png", "--out", "o"],
    "predict: junk checkpoint": ["predict", "junk.pt", "img.png", "--out", "o"],
    "predict: missing checkpoint": ["predict", "none.pt", "img.png", "--out", "o"],
    "predict: checkpoint is a folder": ["predict", "ckdir.pt", "img.png", "--out", "o"],
    "predict: tile does not fit": ["predict", "model.pt", "img.png", "--out", "o", "--tile", "570"],
    "predict: tile not a number": ["predict", "model.pt", "img.png", "--out", "o", "--tile", "big"],
    "predict: tile zero": ["predict", "model.pt", "img.png", "--out", "o", "--tile", "0x5"],
    "predict: out is a file": ["predict", "model.pt", "img.png", "--out", "file.txt"],
    "predict: out under a file": ["predict", "model.pt", "img.png", "--out", "file.txt/sub"],
    "predict: colour into 1 channel": ["predict", "model.pt", "rgb.png", "--out", "o"],
    "predict: gray into 3 channels": ["predict", "model3.pt", "img.png", "--out", "o"],
    "predict: NaN pixels": ["predict", "model.pt", "nan.tif", "--out", "o"],
    "predict: empty folder": ["predict", "model.pt", "empty", "--out", "o"],
    "predict: no CUDA": ["predict", "model.pt", "img.png", "--out", "o", "--device", "cuda"],
    "predict: unknown device": ["predict", "model.pt", "img.png", "--out", "o", "--device", "gpu0"],
    "predict: batch size 0": ["predict", "model.pt", "img.png", "--out", "o", "--batch-size", "0"],
    "predict: two inputs, one stem": ["predict", "model.pt", "img.png", "img.tif", "--out", "o"],
    "predict: threshold above 1": ["predict", "model.pt", "img.png", "--out", "o", "--instances", "--threshold", "2"],
    "predict: instances of a 4-class model": ["predict", "model4.pt", "img.png", "--out", "o", "--instances"],
    "predict: missing zarr": ["predict", "model.pt", "missing.zarr", "--out", "o"],
    # train
    "train: missing config": ["train", "none.toml", "--out", "run"],
    "train: config that does not parse": ["train", "broken.toml", "--out", "run"],
    "train: config of another format": ["train", "config.txt", "--out", "run"],
    "train: unknown key": ["train", "unknown.toml", "--out", "run"],
    "train: override without =": ["train", "good.toml", "--out", "run", "--set", "train.steps"],
    "train: override of the wrong type": ["train", "good.toml", "--out", "run", "--set", "train.steps=many"],
    "train: unknown override": ["train", "good.toml", "--out", "run", "--set", "train.stpes=3"],
    "train: invalid tile": ["train", "badtile.toml", "--out", "run"],
    "train: out is a file": ["train", "good.toml", "--out", "file.txt"],
    "train: resume without last.pt": ["train", "good.toml", "--out", "run", "--resume"],
    "train: missing data": ["train", "nodata.toml", "--out", "run"],
    "train: selection out of range": ["train", "select.toml", "--out", "run"],
    "train: negative lr": ["train", "good.toml", "--out", "run", "--set", "train.lr=-1"],
    # weights
    "weights: raw gray image": ["weights", "raw.tif", "--out", "w.tif"],
    "weights: missing labels": ["weights", "nope.tif", "--out", "w.tif"],
    "weights: colour image": ["weights", "rgb.png", "--out", "w.tif"],
    "weights: non-integer labels": ["weights", "float_labels.tif", "--out", "w.tif"],
    "weights: out is a folder": ["weights", "labels.tif", "--out", "empty"],
    "weights: out under a file": ["weights", "labels.tif", "--out", "file.txt/w.tif"],
    "weights: sigma 0": ["weights", "labels.tif", "--out", "w.tif", "--sigma", "0"],
    "weights: negative w0": ["weights", "labels.tif", "--out", "w.tif", "--w0", "-1"],
    # evaluate
    "evaluate: missing prediction": ["evaluate", "nope", "gt"],
    "evaluate: missing ground truth": ["evaluate", "pred", "nope"],
    "evaluate: unknown metric": ["evaluate", "pred", "gt", "--metrics", "pixel_eror"],
    "evaluate: json under a file": ["evaluate", "pred", "gt", "--json", "file.txt/r.json"],
    "evaluate: json is a folder": ["evaluate", "pred", "gt", "--json", "empty"],
    "evaluate: shapes differ": ["evaluate", "pred_shape", "gt"],
    "evaluate: probability out of range": ["evaluate", "pred_range", "gt"],
    # info
    "info: missing checkpoint": ["info", "none.pt"],
    "info: junk checkpoint": ["info", "junk.pt"],
    # export
    "export: unknown format": ["export", "model.pt", "--out", "ex", "--format", "tflite"],
    "export: missing checkpoint": ["export", "none.pt", "--out", "ex"],
    "export: out under a file": ["export", "model.pt", "--out", "file.txt/ex"],
    "export: out is not empty": ["export", "model.pt", "--out", "images"],
    "export: normalisation without a standard operation": ["export", "model_dtype.pt", "--out", "ex"],
    "export: citation without a reference": ["export", "model.pt", "--out", "ex", "--cite", "just text"],
    "export: name too short": ["export", "model.pt", "--out", "ex", "--name", "ab"],
    # demo
    "demo: invalid tile": ["demo", "--out", "d", "--tile", "570", "--steps", "1"],
    "demo: out is a file": ["demo", "--out", "file.txt", "--steps", "1"],
    "demo: zero steps": ["demo", "--out", "d", "--steps", "0"],
}


def _snapshot(root):
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            state[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return state


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(ws, name, capsys, monkeypatch):
    monkeypatch.chdir(ws)
    before = _snapshot(ws)
    quiet = CASES[name][0] in ("predict", "train", "demo", "export")
    code = main(CASES[name] + ["--quiet"] if quiet else CASES[name])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2, (name, err)
    assert len(lines) == 1, (name, err)
    assert lines[0].startswith(f"unetkit {CASES[name][0]}: error: "), lines[0]
    assert "Traceback" not in err and ".unetkit-tmp" not in err
    assert _snapshot(ws) == before, name
