"""The napari plugin in a real (offscreen) viewer: reader, segment widget, train widget, cancel, bad input."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys


def _virtual_screen() -> None:
    """A virtual X screen for the viewer (napari's OpenGL canvas needs one): Xvfb when no DISPLAY is set."""
    if os.environ.get("DISPLAY") or not shutil.which("Xvfb"):
        return
    for n in range(90, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            atexit.register(proc.terminate)
            os.environ["DISPLAY"] = f":{n}"
            os.environ["QT_QPA_PLATFORM"] = "xcb"
            import time

            for _ in range(50):  # until the server accepts clients
                if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                    break
                time.sleep(0.1)
            return


_virtual_screen()
_QT_OK = subprocess.run([sys.executable, "-c", "from qtpy.QtWidgets import QApplication; QApplication([])"],
                        capture_output=True).returncode == 0

import numpy as np  # noqa: E402
import pytest  # noqa: E402

if not _QT_OK:
    pytest.skip("Qt cannot open a window here (no X server, or missing xcb libraries: see the README's install "
                "command)", allow_module_level=True)
napari = pytest.importorskip("napari", reason="needs the napari extra")
pytest.importorskip("pytestqt", reason="needs the napari extra")

import tifffile  # noqa: E402
import torch  # noqa: E402
import zarr  # noqa: E402

from unetkit import UNet, load_model, predict, save_checkpoint  # noqa: E402
from unetkit.io import write_png  # noqa: E402
from unetkit.napari_plugin import widgets as W  # noqa: E402
from unetkit.synthetic import make_em_image  # noqa: E402


@pytest.fixture
def errors(monkeypatch):
    """Every notification the widgets raise (one line each), still shown in napari."""
    seen = []
    original = W._error

    def record(message):
        seen.append(message)
        original(message)

    monkeypatch.setattr(W, "_error", record)
    return seen


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "m.pt", UNet(1, 2, base_features=2, depth=3))


def test_the_manifest_validates():
    result = subprocess.run([sys.executable, "-m", "npe2", "validate", "unetkit"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in (result.stdout + result.stderr)


def test_the_reader_opens_each_format(make_napari_viewer, tmp_path):
    from unetkit.io.ome_zarr import write_image_metadata

    image = (np.random.default_rng(0).random((40, 50)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", image)
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([image] * 3), photometric="minisblack")
    write_png(tmp_path / "b.png", image)
    np.save(tmp_path / "c.npy", image)
    zarr.open_array(str(tmp_path / "d.zarr"), mode="w", shape=image.shape, dtype="u1")[:] = image
    g = zarr.open_group(str(tmp_path / "e.ome.zarr"), mode="w", zarr_format=2)
    g.create_array("0", shape=(2, 40, 50), dtype="u1")[:] = np.stack([image, image])
    write_image_metadata(g, "e", "zyx")
    viewer = make_napari_viewer()
    shapes = {}
    for name in ("a.tif", "stack.tif", "b.png", "c.npy", "d.zarr", "e.ome.zarr"):
        layers = viewer.open(str(tmp_path / name), plugin="unetkit")
        shapes[name] = tuple(layers[0].data.shape)
    assert shapes == {"a.tif": (40, 50), "stack.tif": (3, 40, 50), "b.png": (40, 50), "c.npy": (40, 50),
                      "d.zarr": (40, 50), "e.ome.zarr": (2, 40, 50)}
    labels = viewer.add_labels(np.arange(20, dtype=np.uint16).reshape(4, 5))
    labels.save(str(tmp_path / "labels.tif"), plugin="unetkit")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), labels.data)


def test_segment_widget_adds_the_numbers_of_predict(make_napari_viewer, qtbot, ckpt):
    viewer = make_napari_viewer()
    image = make_em_image((120, 140), seed=1).image
    viewer.add_image(image, name="em")
    widget = W.SegmentWidget(viewer)
    widget.model_path.value = str(ckpt)
    widget.image.value = viewer.layers["em"]
    widget.run()
    qtbot.waitUntil(lambda: widget.status.value == "done", timeout=60_000)
    ref = predict(load_model(ckpt), image)
    np.testing.assert_array_equal(viewer.layers["em probability"].data, ref[1])
    np.testing.assert_array_equal(viewer.layers["em mask"].data, ref.argmax(0))


def test_train_widget_learns_from_strokes_and_saves_a_checkpoint(make_napari_viewer, qtbot, tmp_path, capsys):
    from unetkit.cli import main

    from unetkit.synthetic import make_nuclei_image

    viewer = make_napari_viewer()
    sample = make_nuclei_image((256, 256), seed=3)  # learnable in seconds on a loaded 2-core machine
    viewer.add_image(sample.image, name="em")
    train = W.TrainWidget(viewer)
    train.image.value = viewer.layers["em"]
    train.add_strokes_layer()
    strokes = viewer.layers["em strokes"]
    truth = (sample.labels > 0).astype(np.uint8) + 1
    painted = np.zeros(truth.shape, bool)
    painted[::9, :] = True  # thin lines: ~11% of the pixels
    strokes.data = np.where(painted, truth, 0).astype(np.uint8)
    train.seconds.value = 20
    train.features.value = 8
    train.depth.value = 3
    train.save_to.value = str(tmp_path / "painted.pt")
    untrained_run, pairs = train._run_config()
    torch.manual_seed(0)
    untrained = UNet.from_config(untrained_run.model).eval()
    train.train()
    qtbot.waitUntil(lambda: train.result is not None, timeout=120_000)
    qtbot.waitUntil(lambda: train.train_button.enabled, timeout=10_000)
    assert train.records and (tmp_path / "painted.pt").is_file()

    def painted_accuracy(model):
        pred = predict(model, sample.image).argmax(0)
        return float((pred[painted] == truth[painted] - 1).mean())

    trained = load_model(tmp_path / "painted.pt")
    majority = max(float((truth[painted] == c).mean()) for c in (1, 2))  # a constant answer
    assert painted_accuracy(trained) > max(painted_accuracy(untrained), majority) + 0.03
    write_png(tmp_path / "em.png", sample.image)
    assert main(["predict", str(tmp_path / "painted.pt"), str(tmp_path / "em.png"), "--out", str(tmp_path / "p"),
                 "--quiet"]) == 0


def test_cancel_leaves_the_viewer_usable(make_napari_viewer, qtbot, ckpt):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((900, 900)).astype(np.float32), name="big")
    widget = W.SegmentWidget(viewer)
    widget.model_path.value = str(ckpt)
    widget.tile.value = "204"  # many small tiles: time to cancel
    widget.image.value = viewer.layers["big"]
    widget.run()
    widget.cancel()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=60_000)
    assert widget.status.value == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["big"]
    viewer.add_labels(np.zeros((9, 9), np.uint8), name="after")
    assert "after" in viewer.layers


def test_bad_input_shows_one_line_and_loses_no_layer(make_napari_viewer, qtbot, ckpt, tmp_path, errors):
    viewer = make_napari_viewer()
    segment, train = W.SegmentWidget(viewer), W.TrainWidget(viewer)
    segment.model_path.value = str(ckpt)
    segment.run()  # no image layer
    train.train()
    viewer.add_image(np.zeros((60, 70), np.float32), name="img")
    viewer.add_labels(np.zeros((30, 30), np.uint8), name="img strokes")  # another shape
    train.image.value = viewer.layers["img"]
    train.train()
    save_checkpoint(tmp_path / "rgb.pt", UNet(3, 2, base_features=2, depth=3))
    segment.image.value = viewer.layers["img"]
    segment.model_path.value = str(tmp_path / "rgb.pt")  # a model with other channels
    segment.run()
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    segment.model_path.value = str(tmp_path / "junk.pt")  # an unreadable file
    segment.run()
    assert len(errors) == 5, errors
    assert all(len(m.splitlines()) == 1 and "Traceback" not in m for m in errors)
    assert "no image layer" in errors[0] and "shape" in errors[2] and "channel" in errors[3]
    assert "junk.pt" in errors[4]
    assert [layer.name for layer in viewer.layers] == ["img", "img strokes"]
