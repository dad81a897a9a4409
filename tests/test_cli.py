"""The command line, through main(argv): outputs, exit status 2 with one line for user mistakes."""

import json
import shutil

import numpy as np
import pytest
import tifffile

from unetkit import UNet, save_checkpoint
from unetkit.cli import main
from unetkit.io import read_image, write_png


@pytest.fixture
def checkpoint(tmp_path):
    return save_checkpoint(tmp_path / "model.pt", UNet(1, 2, base_features=4))


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_on_a_real_isbi_test_image(tmp_path, checkpoint, data_dir, capsys):
    image = data_dir / "isbi2012" / "test" / "images" / "00.png"
    code, out, err = run(["predict", checkpoint, image, "--out", tmp_path / "pred", "--quiet"], capsys)
    assert code == 0, err
    prob = tifffile.imread(tmp_path / "pred" / "00_prob.tif")
    assert prob.shape == (512, 512) and prob.dtype == np.float32
    assert 0 <= prob.min() and prob.max() <= 1
    mask = read_image(tmp_path / "pred" / "00_mask.png")
    assert mask.shape == (512, 512) and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask == 255, prob > 0.5)


@pytest.mark.parametrize("bf16_cpu", [False, True], ids=["cpu-without-bf16", "cpu-with-bf16"])
def test_predict_amp_flag_on_cpu_follows_the_bf16_instructions(tmp_path, checkpoint, capsys, monkeypatch, bf16_cpu):
    """--amp on the CPU: identical output without bf16 instructions; bf16 autocast with them (close, not equal)."""
    from unetkit import devices

    monkeypatch.setattr(devices, "_cpu_has_bf16_instructions", lambda: bf16_cpu)
    image = np.random.default_rng(1).integers(0, 255, (70, 90), dtype=np.uint8)
    write_png(tmp_path / "img.png", image)
    for name, extra in (("plain", []), ("amp", ["--amp"])):
        code, _, err = run(["predict", checkpoint, tmp_path / "img.png", "--out", tmp_path / name, "--device", "cpu",
                            "--quiet", *extra], capsys)
        assert code == 0, err
    plain, amp = (tifffile.imread(tmp_path / name / "img_prob.tif") for name in ("plain", "amp"))
    if bf16_cpu:
        assert not np.array_equal(plain, amp)
        assert np.abs(amp - plain).mean() < 0.01  # bf16 keeps 8 bits of mantissa: a few pixels move by ~0.1
        assert ((amp > 0.5) == (plain > 0.5)).mean() > 0.99
    else:
        np.testing.assert_array_equal(plain, amp)


def test_predict_stack_tiles_and_instances(tmp_path, checkpoint, capsys):
    stack = np.random.default_rng(0).integers(0, 255, (3, 40, 50), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    code, _, err = run(["predict", checkpoint, tmp_path / "stack.tif", "--out", tmp_path / "o", "--tile", "204",
                        "--instances", "--png", "--quiet"], capsys)
    assert code == 0, err
    assert tifffile.imread(tmp_path / "o" / "stack_prob.tif").shape == (3, 40, 50)
    assert tifffile.imread(tmp_path / "o" / "stack_mask.tif").shape == (3, 40, 50)
    labels = tifffile.imread(tmp_path / "o" / "stack_labels.tif")
    assert labels.shape == (3, 40, 50) and labels.dtype == np.uint16
    assert (tmp_path / "o" / "stack_labels.png").is_file()


@pytest.mark.parametrize("case", ["missing_input", "bad_image", "bad_checkpoint", "bad_tile", "missing_checkpoint"])
def test_user_mistakes_exit_2_with_one_line_and_no_output(tmp_path, checkpoint, capsys, case):
    good = tmp_path / "good.png"
    write_png(good, np.zeros((30, 30), np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    junk_ckpt = tmp_path / "junk.pt"
    junk_ckpt.write_text("no")
    argv = {
        "missing_input": ["predict", checkpoint, good, tmp_path / "nope.png"],
        "bad_image": ["predict", checkpoint, good, bad],
        "bad_checkpoint": ["predict", junk_ckpt, good],
        "bad_tile": ["predict", checkpoint, good, "--tile", "570"],
        "missing_checkpoint": ["predict", tmp_path / "none.pt", good],
    }[case] + ["--out", tmp_path / "out", "--quiet"]
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unetkit predict: error:")
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # the good image was not written either


def test_info(checkpoint, capsys):
    code, out, _ = run(["info", checkpoint], capsys)
    assert code == 0
    assert "parameters" in out and "188 + 16k" in out
    code, out, _ = run(["info", checkpoint, "--json"], capsys)
    assert json.loads(out)["config"]["base_features"] == 4


def test_weights_command_on_nuclei(tmp_path, data_dir, capsys):
    code, out, err = run(["weights", data_dir / "dsb2018_nuclei" / "labels.tif", "--out", tmp_path / "w.tif", "--png"],
                         capsys)
    assert code == 0, err
    w = tifffile.imread(tmp_path / "w.tif")
    assert w.shape == (512, 512) and w.dtype == np.float32 and w.max() > 5
    assert (tmp_path / "w.png").is_file()


def test_evaluate_labels_against_themselves(tmp_path, data_dir, capsys):
    gt = tmp_path / "gt"
    gt.mkdir()
    for i in range(2):
        shutil.copy(data_dir / "isbi2012" / "train" / "labels" / f"{i:02d}.png", gt)
    code, out, err = run(["evaluate", gt, gt, "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    for key in ("pixel_error", "rand_error", "warping_error"):
        assert result[key] == 0
    assert result["v_rand"] == 1 and result["at_0.5"]["pixel_error"] == 0


def test_train_cli_with_overrides_and_resume(tmp_path, capsys):
    from unetkit.synthetic import make_em_dataset

    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    for i, s in enumerate(make_em_dataset(3, (80, 80), seed=1)):
        write_png(tmp_path / "images" / f"{i}.png", s.image)
        write_png(tmp_path / "labels" / f"{i}.png", s.labels)
    (tmp_path / "c.toml").write_text(
        '[model]\ndepth = 2\nbase_features = 4\n[data]\nimages = "images"\nlabels = "labels"\n'
        'select = "0:2"\nval_select = "2:3"\n[train]\nsteps = 4\ntile = 124\nval_every = 2\ncheckpoint_every = 2\n'
        "plots = false\n"
    )
    code, out, err = run(["train", tmp_path / "c.toml", "--out", tmp_path / "run", "--set", "train.steps=2",
                          "--quiet"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["steps"] == 2
    code, out, err = run(["train", tmp_path / "c.toml", "--out", tmp_path / "run", "--resume", "--quiet"], capsys)
    assert code == 0, err
    assert "trained 4 steps" in out
    code, out, err = run(["predict", tmp_path / "run" / "best.pt", tmp_path / "images" / "0.png", "--out",
                          tmp_path / "p", "--quiet"], capsys)
    assert code == 0 and (tmp_path / "p" / "0_prob.tif").is_file()
    code, _, err = run(["train", tmp_path / "c.toml", "--out", tmp_path / "run", "--set", "train.stpes=3"], capsys)
    assert code == 2 and "train.stpes" in err


def test_demo_at_a_tiny_size(tmp_path, capsys):
    code, out, err = run(["demo", "--out", tmp_path / "demo", "--steps", "3", "--size", "64", "--n-train", "2",
                          "--tile", "220", "--base-features", "4", "--quiet"], capsys)
    assert code == 0, err
    assert "held-out pixel accuracy" in out
    for name in ("model.pt", "heldout_prob.tif", "heldout_mask.png", "heldout_overlay.png"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert tifffile.imread(tmp_path / "demo" / "heldout_prob.tif").dtype == np.float32


@pytest.mark.parametrize("config", ["config.toml", "paper.toml"])
def test_the_isbi_configs_train_and_the_final_all_data_run_needs_no_validation(tmp_path, data_dir, capsys, config):
    """Both ISBI configs run as documented (profiles applied); the final-model command (all 25 slices,
    ``data.val_select=`` empty) trains with no validation and leaves a usable best.pt."""
    from pathlib import Path

    from unetkit import load_model

    path = Path(__file__).resolve().parents[1] / "examples" / "isbi2012" / config
    argv = ["train", path, "--out", tmp_path / "run", "--quiet", "--set", "data.select=0:25", "--set",
            "data.val_select=", "--set", "train.steps=2", "--set", "model.base_features=2", "--set",
            "model.depth=2", "--set", "train.tile=124", "--set", "train.plots=false", "--set", "train.threads=1"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["profile"] == ("paper" if config == "paper.toml" else "default")
    assert saved["train"]["optimizer"] == ("sgd" if config == "paper.toml" else "adam")
    assert saved["data"]["val_select"] == "" and saved["data"]["select"] == "0:25"
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert not any("val" in rec for rec in log) and max(r["step"] for r in log) == 2
    assert load_model(tmp_path / "run" / "best.pt").config.base_features == 2
