"""Block-wise segmentation on a real 2-worker Dask LocalCluster: exactness, instances across blocks, resume, OME-Zarr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import zarr

pytest.importorskip("distributed")

from unetkit import UNet, load_model, predict, save_checkpoint  # noqa: E402
from unetkit.cli import main  # noqa: E402
from unetkit.distributed import SegmentConfig, local_client, segment_volume  # noqa: E402
from unetkit.inference import predict_region  # noqa: E402
from unetkit.labels import label_components  # noqa: E402
from unetkit.normalize import intensity_range  # noqa: E402


def _smooth(shape, seed):
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 4)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(3)
    model = UNet(1, 2, base_features=2, depth=3, dropout=0.0)
    with torch.no_grad():  # a bias that makes P(object) cross 0.5 in patches: objects of many sizes
        model.head.bias.copy_(torch.tensor([0.0, 0.05]))
    return save_checkpoint(tmp_path_factory.mktemp("m") / "model.pt", model)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    """An odd-sized 2-D image in a zarr with odd chunks."""
    image = (_smooth((413, 287), 0) * 4000).astype(np.uint16)
    path = tmp_path_factory.mktemp("in") / "image.zarr"
    z = zarr.open_array(str(path), mode="w", shape=image.shape, chunks=(101, 77), dtype="u2")
    z[:] = image
    return path, image


@pytest.fixture(scope="module")
def client():
    c = local_client(2)
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' count: float32 convolutions round alike only at equal thread counts
    yield
    torch.set_num_threads(before)


def test_blocks_on_two_workers_equal_single_process_predict_bit_for_bit(ckpt, volume, client, tmp_path, one_thread):
    path, image = volume
    config = SegmentConfig(chunks=(70, 33), tile_shape=124, threads=1)
    summary = segment_volume(ckpt, path, tmp_path / "out.zarr", config, client=client)
    assert summary["blocks"] == 6 * 9
    ref = predict(load_model(ckpt), image, tile_shape=124)
    got = zarr.open_group(str(tmp_path / "out.zarr"))
    np.testing.assert_array_equal(got["0"][:], ref[1])
    np.testing.assert_array_equal(got["labels/mask/0"][:], ref.argmax(0))
    # region tiles: each block plans its own tiles (nothing computed twice), equal up to rounding
    segment_volume(ckpt, path, tmp_path / "region.zarr", SegmentConfig(chunks=(70, 33), tiles="region", threads=1),
                   client=client)
    assert np.abs(zarr.open_group(str(tmp_path / "region.zarr"))["0"][:] - ref[1]).max() < 1e-5


def test_a_block_in_float64_is_the_window_of_the_whole_prediction_bit_for_bit(ckpt, volume):
    _, image = volume
    model = load_model(ckpt).double()
    whole = predict(model, image, tile_shape=124, out_dtype=np.float64)
    offset, scale = intensity_range(image, model.config.normalization)
    rows, cols = slice(140, 210), slice(99, 132)  # an odd block away from the tile grid
    block = predict_region(model, image, rows, cols, tile_shape=(124, 124), offset=offset, scale=scale,
                           out_dtype=np.float64)
    np.testing.assert_array_equal(block, whole[:, rows, cols])


def test_instances_are_merged_across_block_faces(ckpt, volume, client, tmp_path):
    from unetkit.instances import remove_small

    path, _ = volume
    config = SegmentConfig(chunks=(70, 33), tile_shape=124, threads=1, instances=True, min_size=6)
    summary = segment_volume(ckpt, path, tmp_path / "out.zarr", config, client=client)
    got = zarr.open_group(str(tmp_path / "out.zarr"))
    prob = got["0"][:]
    expected = remove_small(label_components(prob > 0.5), 6)
    labels = got["labels/instances/0"][:]
    assert labels.max() == summary["objects"] == len(np.unique(expected)) - 1 > 10
    pairs = set(zip(labels.ravel().tolist(), expected.ravel().tolist()))  # equal up to a permutation
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    assert (labels > 0).sum() == (expected > 0).sum()
    crossing = [lab for lab in np.unique(labels[69:71, :]) if lab and lab in labels[69] and lab in labels[70]]
    assert crossing  # some objects really cross a block face
    levels = got["labels/instances"].attrs["multiscales"][0]["datasets"]
    assert sorted(got["labels/instances"].array_keys()) == [d["path"] for d in levels]


def test_the_label_pyramid_halves_down_to_256_px():
    from unetkit.io.ome_zarr import label_level_shapes

    assert label_level_shapes((3, 2049, 3001), "zyx") == [(3, 2049, 3001), (3, 1025, 1501), (3, 513, 751), (3, 257, 376)]


def test_a_killed_run_resumes_and_finishes(ckpt, volume, tmp_path):
    path, image = volume
    out = tmp_path / "out.zarr"
    cmd = [sys.executable, "-m", "unetkit", "predict", str(ckpt), str(path), "--out", str(out), "--chunks", "30x30",
           "--tile", "124", "--workers", "2", "--threads-per-worker", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    done = out / ".unetkit_done"
    deadline = time.time() + 120
    while time.time() < deadline and (not done.is_dir() or len(list(done.iterdir())) < 5):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its cluster's worker processes
    proc.wait()
    n_done = len(list(done.iterdir()))
    assert 5 <= n_done < 14 * 10, n_done  # killed part way
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert len(list(done.iterdir())) == 14 * 10
    ref = predict(load_model(ckpt), image, tile_shape=124)
    assert np.abs(zarr.open_group(str(out))["0"][:] - ref[1]).max() < 1e-5


def test_ome_zarr_in_and_out(ckpt, volume, tmp_path):
    from unetkit.io.ome_zarr import open_volume, write_image_metadata

    _, image = volume
    stack = np.stack([image, image[::-1]])  # (Z, H, W)
    src = zarr.open_group(str(tmp_path / "in.ome.zarr"), mode="w", zarr_format=2)
    src.create_array("0", shape=stack.shape, chunks=(1, 128, 128), dtype="u2")[:] = stack
    src.create_array("1", shape=(2, 207, 144), chunks=(1, 128, 128), dtype="u2")[:] = stack[:, ::2, ::2]
    write_image_metadata(src, "stack", "zyx", n_levels=2)
    assert open_volume(tmp_path / "in.ome.zarr").axes == "zyx"
    segment_volume(ckpt, tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr",
                   SegmentConfig(chunks=(100, 100), tile_shape=124, instances=True))
    ref = predict(load_model(ckpt), stack[1], tile_shape=124)
    got = zarr.open_group(str(tmp_path / "out.ome.zarr"))
    assert np.abs(got["0"][1] - ref[1]).max() < 1e-5
    ome = pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url

    nodes = list(ome.Reader(parse_url(str(tmp_path / "out.ome.zarr")))())
    assert nodes  # the ome-zarr package reads the output
    labels = list(ome.Reader(parse_url(str(tmp_path / "out.ome.zarr" / "labels" / "instances")))())
    assert labels and len(labels[0].data) >= 1 and labels[0].data[0].shape == stack.shape


@pytest.mark.parametrize("case", ["scheduler", "not_zarr", "unreadable", "different_job"])
def test_bad_requests_give_one_line_and_lose_nothing(ckpt, volume, tmp_path, capsys, case):
    path, _ = volume
    out = tmp_path / "out.zarr"
    if case == "different_job":
        assert main(["predict", str(ckpt), str(path), "--out", str(out), "--chunks", "200", "--quiet"]) == 0
    if case == "unreadable":
        broken = tmp_path / "broken.zarr"
        z = zarr.open_array(str(broken), mode="w", shape=(50, 50), chunks=(25, 25), dtype="u1")
        z[:] = 1
        for f in broken.rglob("*"):
            if f.is_file() and f.name[0].isdigit():
                f.write_bytes(b"not a compressed chunk")
        path = broken
    before = sorted(str(p) for p in tmp_path.rglob("*")), {p: p.stat().st_mtime_ns for p in out.rglob("*")} if out.exists() else {}
    argv = {"scheduler": ["--scheduler", "tcp://127.0.0.1:9", "--out", str(out)],
            "not_zarr": ["--workers", "1", "--out", str(tmp_path / "plain")],
            "unreadable": ["--out", str(out)],
            "different_job": ["--out", str(out), "--chunks", "100"]}[case]
    capsys.readouterr()
    code = main(["predict", str(ckpt), str(path), *argv, "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    after = sorted(str(p) for p in tmp_path.rglob("*")), {p: p.stat().st_mtime_ns for p in out.rglob("*")} if out.exists() else {}
    assert after == before
