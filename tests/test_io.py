import os

import numpy as np
import pytest
import tifffile

from unetkit.io import ImageReadError, open_array, read_image, read_stack, write_mask, write_png, write_tiff


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_round_trip_gray(tmp_path, dtype, rng):
    a = (rng.random((33, 47)) * 200).astype(dtype)
    write_tiff(tmp_path / "a.tif", a)
    b = read_image(tmp_path / "a.tif")
    assert b.dtype == dtype
    np.testing.assert_array_equal(a, b)


def test_tiff_stack_and_multichannel(tmp_path, rng):
    stack = rng.integers(0, 65535, (4, 20, 30), dtype=np.uint16)
    write_tiff(tmp_path / "s.tif", stack)
    planes = read_stack(tmp_path / "s.tif")
    assert len(planes) == 4
    np.testing.assert_array_equal(np.stack(planes), stack)
    # a colour TIFF stored (H, W, 3) comes back channels-first
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.tif"), np.moveaxis(rgb, -1, 0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip(tmp_path, dtype, rng):
    a = rng.integers(0, np.iinfo(dtype).max, (25, 31), dtype=dtype)
    write_png(tmp_path / "a.png", a)
    b = read_image(tmp_path / "a.png")
    assert b.dtype == dtype
    np.testing.assert_array_equal(a, b)
    rgb = rng.integers(0, 255, (25, 31, 3), dtype=np.uint8)
    write_png(tmp_path / "rgb.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), np.moveaxis(rgb, -1, 0))


def test_npy_and_memmap(tmp_path, rng):
    a = rng.normal(size=(3, 10, 12)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy"), a)
    mm = open_array(tmp_path / "a.npy")
    assert isinstance(mm, np.memmap)
    np.testing.assert_array_equal(mm, a)


def test_masks_binary_is_0_255_and_multiclass_keeps_indices(tmp_path):
    classes = np.array([[0, 1], [1, 0]])
    write_mask(tmp_path / "m.png", classes, num_classes=2)
    np.testing.assert_array_equal(read_image(tmp_path / "m.png"), [[0, 255], [255, 0]])
    write_mask(tmp_path / "m3.png", np.array([[0, 2], [1, 2]]), num_classes=3)
    np.testing.assert_array_equal(read_image(tmp_path / "m3.png"), [[0, 2], [1, 2]])
    labels = np.arange(70000, dtype=np.uint32).reshape(280, 250)
    write_tiff(tmp_path / "l.tif", labels)
    np.testing.assert_array_equal(read_image(tmp_path / "l.tif"), labels)


def test_unreadable_and_missing_files_raise_clear_errors(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ImageReadError, match="cannot read as an image"):
        read_image(bad)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.png"
    with pytest.raises(ValueError):
        write_png(target, np.zeros((4, 4), np.float32))  # PNG holds integers only
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_umask_permissions(tmp_path):
    import os

    from unetkit.io import write_json

    old = os.umask(0o027)
    try:
        write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
        write_json({"a": 1}, tmp_path / "a.json")
    finally:
        os.umask(old)
    for name in ("a.png", "a.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_temporaries_never_end_in_the_real_suffix_and_stale_ones_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    from unetkit.io import TEMP_SUFFIX, atomic_path, remove_stale_temps

    with atomic_path(tmp_path / "x_prob.tif") as tmp:
        assert tmp.name.startswith(".x_prob.tif.") and tmp.name.endswith(TEMP_SUFFIX)
        tmp.write_bytes(b"data")
    # a process killed while writing leaves its temporary behind
    code = ("import os, sys; from unetkit.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as t:\n    t.write_bytes(b'half'); os._exit(9)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "y.tif")], check=False)
    stale = [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    assert len(stale) == 1 and not (tmp_path / "y.tif").exists()
    with atomic_path(tmp_path / "z.tif") as live:  # a writer still running keeps its temporary
        live.write_bytes(b"x")
        assert remove_stale_temps(tmp_path) == stale
        assert live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_prob.tif", "z.tif"]
    assert os.path.exists(tmp_path / "z.tif")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc to see a zombie")
def test_a_killed_writer_not_yet_reaped_counts_as_dead(tmp_path):
    import subprocess
    import sys

    from unetkit.io import TEMP_SUFFIX, remove_stale_temps

    code = ("import os, sys; from unetkit.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as t:\n    t.write_bytes(b'half'); os._exit(9)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "y.tif")])
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # it has exited but is not reaped: a zombie
    stale = [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    assert len(stale) == 1
    assert remove_stale_temps(tmp_path) == stale
    assert proc.wait() == 9 and not list(tmp_path.iterdir())


def test_write_errors_name_the_users_path(tmp_path):
    from unetkit.io import OutputPathError, write_json

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match=str(blocker / "r.json")) as info:
        write_json({"a": 1}, blocker / "r.json")
    assert ".unetkit-tmp" not in str(info.value) and ".tmp" not in str(info.value)


def test_the_colour_rule(tmp_path):
    from unetkit.io import read_image_axes

    gray = (np.arange(20 * 30) % 251).astype(np.uint8).reshape(20, 30)
    write_png(tmp_path / "g.png", np.dstack([gray] * 3))  # a gray image saved as RGB
    array, axes = read_image_axes(tmp_path / "g.png")
    assert axes == "YX"
    np.testing.assert_array_equal(array, gray)
    rgba = np.dstack([gray, gray // 2, gray, np.full_like(gray, 255)])  # colour with an opaque alpha
    write_png(tmp_path / "c.png", rgba)
    array, axes = read_image_axes(tmp_path / "c.png")
    assert axes == "CYX" and array.shape == (3, 20, 30)
    tifffile.imwrite(tmp_path / "s.tif", np.stack([gray] * 3), photometric="minisblack")
    assert read_image_axes(tmp_path / "s.tif")[1] == "ZYX"  # three planes saved as a stack stay a stack
