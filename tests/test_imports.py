"""What importing unetkit and asking for help costs: no plotting, GUI, cluster or export libraries."""

import subprocess
import sys

HEAVY = ("matplotlib", "PyQt5", "PyQt6", "PySide2", "PySide6", "qtpy", "napari", "magicgui", "dask", "distributed",
         "onnx", "onnxruntime", "bioimageio", "zarr", "skimage")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(','.join(sorted(set(sys.modules))))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.strip().split(",")}


def test_import_and_help_load_no_heavy_optional_library():
    assert not _loaded_after("import unetkit") & set(HEAVY)
    helps = "\n".join(f"try:\n    main(['{c}', '--help'])\nexcept SystemExit:\n    pass"
                      for c in ("--help", "predict", "train", "evaluate", "weights", "info", "demo"))
    loaded = _loaded_after("import contextlib, io\nfrom unetkit.cli import main\n"
                           "with contextlib.redirect_stdout(io.StringIO()):\n"
                           + "\n".join("    " + line for line in helps.splitlines()))
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
