"""The Segment and Train dock widgets: the paper's few-annotations loop without a terminal.

Segment: choose a model (a checkpoint, an exported ``.onnx`` or bioimage.io
package) and an image layer; the prediction runs in a worker thread with a
progress bar and a cancel button and adds a probability Image layer and a
Labels layer. Zarr layers are segmented block by block into a temporary
OME-Zarr and shown lazily, so images larger than memory work.

Train: paint strokes in a Labels layer named ``<image> strokes`` (1 =
background/membrane, 2 = object/cell, 0 = not painted: ignored by the loss),
on one or more images; train from scratch or fine-tune the loaded model for a
time budget with the paper's augmentation; the loss curve updates live;
"Stop" ends the run at the next step and keeps its checkpoint; when training
ends the prediction layers refresh and the checkpoint is saved where chosen.

Every mistake (no image layer, a strokes layer of another shape, a model with
other channels, an unreadable file) shows one line in a napari notification;
no layer is removed or changed by a failed run.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from magicgui.widgets import (CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, ProgressBar,
                              PushButton, SpinBox)

__all__ = ["SegmentWidget", "TrainWidget", "load_any_model", "strokes_to_pair", "STROKES_SUFFIX"]

STROKES_SUFFIX = " strokes"


class Cancelled(Exception):
    """Raised inside a run when its cancel button was pressed."""


class _Outcome:
    """What a worker returns instead of raising: ``status`` ("cancelled", "failed") and a one-line message."""

    def __init__(self, status: str, message: str = ""):
        self.status, self.message = status, message


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def load_any_model(path: str | Path):
    """A checkpoint (PyTorch) or an exported model (ONNX Runtime) from ``path``; errors name the path."""
    from ..checkpoint import load_model
    from ..export.runtime import is_exported

    path = Path(path)
    if not str(path) or str(path) in (".", ""):
        raise ValueError("choose a model file first (a .pt checkpoint, an exported .onnx or a package)")
    if path.suffix.lower() != ".pt" and is_exported(path):
        from ..export.runtime import OnnxUNet

        return OnnxUNet.load(path)
    return load_model(path)


def _as_model_input(data, in_channels: int, rgb: bool):
    """(H, W) or (C, H, W) for the model from a layer's data (RGB layers are (H, W, 3))."""
    if rgb:
        data = np.moveaxis(np.asarray(data), -1, 0)
        if data.shape[0] != in_channels:
            raise ValueError(f"the image has {data.shape[0]} colour channels but the model takes {in_channels}")
        return data
    if in_channels != 1:
        raise ValueError(f"the model takes {in_channels} channels; choose an RGB or {in_channels}-channel image")
    return data


class SegmentWidget(Container):
    """Segment the chosen image layer with a model; see the module docstring."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.model_path = FileEdit(label="model", mode="r", filter="*.pt *.onnx *.zip *.yaml")
        self.image = ComboBox(label="image", choices=self._images)
        self.planes = ComboBox(label="planes", choices=["current plane", "all planes"], value="current plane")
        self.tile = LineEdit(label="tile", value="auto")
        self.tta = CheckBox(text="8-fold test-time augmentation", value=False)
        self.instances = CheckBox(text="instances (one label per object)", value=False)
        self.threshold = FloatSpinBox(label="threshold", value=0.5, min=0.0, max=1.0, step=0.05)
        self.run_button = PushButton(text="Segment")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=100)
        self.status = Label(value="")
        super().__init__(widgets=[self.model_path, self.image, self.planes, self.tile, self.tta, self.instances,
                                  self.threshold, self.run_button, self.cancel_button, self.progress, self.status])
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        viewer.layers.events.inserted.connect(lambda e: self.image.reset_choices())
        viewer.layers.events.removed.connect(lambda e: self.image.reset_choices())
        self._cancel = threading.Event()
        self.worker = None
        self.last_result = None

    def _images(self, widget=None):
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        """Check the inputs here (one-line notifications), then predict in a worker thread."""
        from napari.qt.threading import create_worker

        try:
            layer = self.image.value
            if layer is None:
                raise ValueError("no image layer: open or choose an image first")
            model = load_any_model(self.model_path.value)
            job = self._job(layer, model)
        except Exception as exc:  # a user mistake: one line, nothing changed
            _error(_one_line(exc))
            return
        self._cancel.clear()
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = "segmenting..."
        self.worker = create_worker(job)
        self.worker.yielded.connect(lambda v: setattr(self.progress, "value", int(v)))
        self.worker.returned.connect(lambda result: self._done(layer, result))
        self.worker.finished.connect(self._reset)
        self.worker.start()

    def _job(self, layer, model):
        """A generator (run in the worker) yielding percent done and returning (probabilities, labels)."""
        from ..instances import InstanceConfig, probabilities_to_instances
        from ..io import is_zarr_path  # noqa: F401 (zarr layers: see below)

        data = layer.data
        cfg = model.config
        rgb = bool(getattr(layer, "rgb", False))
        spatial = data.ndim - (1 if rgb else 0)
        if spatial not in (2, 3):
            raise ValueError(f"the image layer has shape {tuple(data.shape)}; expected a plane or a stack")
        if self.instances.value and cfg.num_classes not in (2, 3):
            raise ValueError("instances need a 2-class or 3-class model")
        tile = self.tile.value.strip() or "auto"
        tile = "auto" if tile == "auto" else int(tile)
        planes = list(range(data.shape[0])) if spatial == 3 and self.planes.value == "all planes" else None
        current = self.viewer.dims.current_step[0] if spatial == 3 else None
        lazy = not isinstance(data, np.ndarray) and spatial == 2 and not rgb
        _as_model_input(data[0] if spatial == 3 and not rgb else data, cfg.in_channels, rgb)  # channels checked now
        icfg = InstanceConfig(threshold=self.threshold.value)

        def work():
            try:
                return (yield from compute())
            except Cancelled:
                return _Outcome("cancelled")
            except Exception as exc:  # shown as one line, never as a traceback
                return _Outcome("failed", _one_line(exc))

        def compute():
            from ..inference import predict

            def callback(done, total):
                if self._cancel.is_set():
                    raise Cancelled("cancelled")

            if lazy:
                return self._segment_lazily(layer, model, tile), None
            indices = planes if planes is not None else ([current] if current is not None else [None])
            probs = []
            for n, z in enumerate(indices):
                image = _as_model_input(data if z is None else np.asarray(data[z]), cfg.in_channels, rgb)
                probs.append(predict(model, np.asarray(image), tile_shape=tile, tta=self.tta.value,
                                     callback=callback))
                yield 100 * (n + 1) / len(indices)
            prob = np.stack(probs)
            border = 2 if cfg.num_classes == 3 else None
            labels = (np.stack([probabilities_to_instances(p, config=icfg, border_class=border) for p in prob])
                      if self.instances.value else prob.argmax(1).astype(np.uint8))
            return (prob, labels, indices)

        return work

    def _segment_lazily(self, layer, model, tile):
        """A Zarr layer: block-wise into a temporary OME-Zarr (never all in memory); the arrays shown lazily."""
        import zarr

        from ..distributed import SegmentConfig, segment_volume

        source = getattr(layer, "source", None)
        path = getattr(source, "path", None)
        if not path:
            raise ValueError("a lazily loaded image must come from a Zarr file to be segmented block by block")
        if not hasattr(model, "state_dict"):
            raise ValueError("block-wise segmentation runs PyTorch checkpoints (.pt)")
        out = Path(tempfile.mkdtemp(prefix="unetkit-napari-")) / "segmentation.zarr"
        segment_volume(self.model_path.value, path, out, SegmentConfig(tile_shape=tile, instances=self.instances.value,
                                                                      threshold=self.threshold.value))
        return zarr.open_group(str(out), mode="r")

    def _show(self, layer, result) -> None:
        prob, labels = result[0], result[1]
        name = layer.name
        if labels is None:  # a lazy OME-Zarr group
            group = prob
            self._put(f"{name} probability", group["0"], "image", colormap="magma", contrast_limits=(0, 1))
            key = "labels/instances/0" if self.instances.value else "labels/mask/0"
            self._put(f"{name} {'instances' if self.instances.value else 'mask'}", group[key], "labels")
        else:
            indices = result[2]
            fg = prob[:, 1] if prob.shape[1] == 2 else prob.argmax(1).astype(np.float32) / (prob.shape[1] - 1)
            full = indices != [None] and layer.data.ndim == 3 and len(indices) == layer.data.shape[0]
            if indices == [None] or full:
                fg_data, lab_data = (fg[0], labels[0]) if indices == [None] else (fg, labels)
            else:  # one plane of a stack: fill that plane of stack-shaped layers
                fg_data = np.zeros(layer.data.shape, np.float32)
                lab_data = np.zeros(layer.data.shape, labels.dtype)
                fg_data[indices[0]], lab_data[indices[0]] = fg[0], labels[0]
            self._put(f"{name} probability", fg_data, "image", colormap="magma", contrast_limits=(0, 1),
                      opacity=0.6)
            self._put(f"{name} {'instances' if self.instances.value else 'mask'}", lab_data, "labels")
        self.last_result = result
        self.status.value = "done"

    def _put(self, name: str, data, kind: str, **kwargs) -> None:
        if name in self.viewer.layers:
            self.viewer.layers[name].data = data
        elif kind == "image":
            self.viewer.add_image(data, name=name, **kwargs)
        else:
            self.viewer.add_labels(data, name=name)

    def _done(self, layer, result) -> None:
        if isinstance(result, _Outcome):
            self.status.value = result.status
            if result.message:
                _error(result.message)
            return
        try:
            self._show(layer, result)
        except Exception as exc:  # e.g. the layer was removed meanwhile
            self.status.value = "failed"
            _error(_one_line(exc))

    def _reset(self) -> None:
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self.progress.value = 0 if self.status.value != "done" else 100


def strokes_to_pair(image: np.ndarray, strokes: np.ndarray, *, normalization, name: str, in_channels: int = 1):
    """A training pair from painted strokes: 1 = class 0 (background), 2 = class 1 (object), 0 = not painted.

    No class balancing and no border weights: strokes are not instances, and
    what the user paints more is what matters more to them.
    """
    from ..data import make_pair
    from ..weights import WeightMapConfig

    strokes = np.asarray(strokes)
    if strokes.shape != np.asarray(image).shape[-2:]:
        raise ValueError(f"the strokes layer {name!r} has shape {strokes.shape} but its image {np.asarray(image).shape}")
    values = set(np.unique(strokes).tolist())
    if not values - {0}:
        raise ValueError(f"nothing painted in {name!r}: paint label 1 on background and label 2 on objects")
    if values - {0, 1, 2}:
        raise ValueError(f"the strokes layer {name!r} holds labels {sorted(values - {0, 1, 2})}; use 1 (background) "
                         "and 2 (object)")
    return make_pair(image, strokes.astype(np.int64) - 1, kind="classes", num_classes=2, in_channels=in_channels,
                     normalization=normalization, weight_config=WeightMapConfig(w0=0.0, class_balance=False),
                     ignore_value=-1, name=name)


class TrainWidget(Container):
    """Train on painted strokes for a time budget; see the module docstring."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.image = ComboBox(label="image", choices=self._images)
        self.new_strokes = PushButton(text="New strokes layer (1 background, 2 object)")
        self.init_from = FileEdit(label="fine-tune from", mode="r", filter="*.pt", value="")
        self.seconds = SpinBox(label="seconds", value=120, min=5, max=24 * 3600, step=5)
        self.features = SpinBox(label="width (features)", value=16, min=2, max=64)
        self.depth = SpinBox(label="depth", value=4, min=2, max=5)
        self.save_to = FileEdit(label="save model to", mode="w", filter="*.pt",
                                value=str(Path.home() / "unetkit_models" / "model.pt"))
        self.train_button = PushButton(text="Train")
        self.stop_button = PushButton(text="Stop", enabled=False)
        self.status = Label(value="")
        super().__init__(widgets=[self.image, self.new_strokes, self.init_from, self.seconds, self.features, self.depth,
                                  self.save_to, self.train_button, self.stop_button, self.status])
        self.canvas = self._loss_canvas()
        self.native.layout().addWidget(self.canvas)
        self.new_strokes.changed.connect(self.add_strokes_layer)
        self.train_button.changed.connect(self.train)
        self.stop_button.changed.connect(lambda: self._stop.set())
        viewer.layers.events.inserted.connect(lambda e: self.image.reset_choices())
        viewer.layers.events.removed.connect(lambda e: self.image.reset_choices())
        self._stop = threading.Event()
        self.records: list[dict] = []
        self.worker = None
        self.result = None
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(500)
        self.timer.timeout.connect(self._draw_loss)

    def _images(self, widget=None):
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image) and not layer.name.endswith(
            (" probability",))]

    def _loss_canvas(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3.2, 2.0), constrained_layout=True)
        self.axes = fig.add_subplot()
        self.axes.set_xlabel("step", fontsize=8)
        self.axes.set_ylabel("loss", fontsize=8)
        return FigureCanvasQTAgg(fig)

    def _draw_loss(self) -> None:
        records = [r for r in list(self.records) if "loss" in r]
        if not records:
            return
        self.axes.clear()
        self.axes.plot([r["step"] for r in records], [r["loss"] for r in records], lw=1.0)
        self.axes.set_xlabel("step", fontsize=8)
        self.axes.set_ylabel("loss", fontsize=8)
        self.canvas.draw_idle()

    def add_strokes_layer(self) -> None:
        layer = self.image.value
        if layer is None:
            _error("no image layer: open or choose an image first")
            return
        shape = layer.data.shape[:-1] if getattr(layer, "rgb", False) else layer.data.shape
        name = layer.name + STROKES_SUFFIX
        if name not in self.viewer.layers:
            strokes = self.viewer.add_labels(np.zeros(shape, np.uint8), name=name)
            strokes.brush_size = 6
            strokes.selected_label = 2
            strokes.mode = "paint"

    def pairs(self, normalization):
        """Every (image, '<image> strokes') pair of the viewer as training pairs (plane by plane for stacks)."""
        from napari.layers import Labels

        pairs = []
        for strokes in [lay for lay in self.viewer.layers if isinstance(lay, Labels)]:
            if not strokes.name.endswith(STROKES_SUFFIX):
                continue
            base = strokes.name[: -len(STROKES_SUFFIX)]
            if base not in self.viewer.layers:
                raise ValueError(f"the strokes layer {strokes.name!r} has no image layer {base!r}")
            image = np.asarray(self.viewer.layers[base].data)
            data = np.asarray(strokes.data)
            if image.shape != data.shape:
                raise ValueError(f"the strokes layer {strokes.name!r} has shape {data.shape} but {base!r} "
                                 f"{image.shape}")
            planes = [(image, data)] if image.ndim == 2 else [(image[z], data[z]) for z in range(image.shape[0])
                                                                if data[z].any()]
            pairs += [strokes_to_pair(im, st, normalization=normalization, name=base) for im, st in planes]
        if not pairs:
            raise ValueError("no strokes: press 'New strokes layer' and paint 1 (background) and 2 (object)")
        return pairs

    def train(self) -> None:
        """Check the inputs (one-line notifications), then train in a worker thread."""
        from napari.qt.threading import create_worker

        try:
            run, pairs = self._run_config()
            save_to = Path(self.save_to.value)
            from ..io import check_output_file

            check_output_file(save_to)
        except Exception as exc:
            _error(_one_line(exc))
            return
        self._stop.clear()
        self.records.clear()
        self.train_button.enabled, self.stop_button.enabled = False, True
        self.status.value = f"training on {len(pairs)} image(s) for {self.seconds.value} s..."
        self.worker = create_worker(self._train_job, run, pairs, save_to)
        self.worker.returned.connect(self._trained)
        self.worker.finished.connect(self._reset)
        self.timer.start()
        self.worker.start()

    def _run_config(self):
        from ..checkpoint import load_model
        from ..model import ModelConfig
        from ..normalize import NormalizationConfig
        from ..train import RunConfig, TrainConfig
        from ..weights import WeightMapConfig

        init = str(self.init_from.value or "").strip()
        if init and init != ".":
            model_cfg = replace(load_model(init).config, dropout=0.0)  # no dropout for strokes, as below
            if model_cfg.in_channels != 1 or model_cfg.num_classes != 2:
                raise ValueError(f"{init}: fine-tuning needs a 1-channel, 2-class model; this one has "
                                 f"{model_cfg.in_channels} channel(s) and {model_cfg.num_classes} classes")
        else:
            init = ""
            # batch norm, no dropout, lr 3e-3, no class balancing: what learned painted strokes fastest here
            # (examples/napari/README.md)
            model_cfg = ModelConfig(base_features=self.features.value, depth=self.depth.value, batch_norm=True, dropout=0.0,
                                    normalization=NormalizationConfig("zscore"), class_names=("background", "object"))
        pairs = self.pairs(model_cfg.normalization)
        tile = self._tile(model_cfg, min(min(p.image.shape[-2:]) for p in pairs))
        train = TrainConfig(steps=10**6, budget=f"{self.seconds.value}s", calibration_steps=10, tile=tile,
                            optimizer="adam", lr=3e-3, schedule="poly", warmup_steps=20, val_every=10**6,
                            checkpoint_every=10**6, log_every=5, plots=False, progress=False, init_from=init)
        return RunConfig(model=model_cfg, weights=WeightMapConfig(w0=0.0, class_balance=False), train=train), pairs

    @staticmethod
    def _tile(config, side: int) -> int:
        """The largest valid training tile up to the image side and at most ~320 px (fast steps on a CPU)."""
        from .. import geometry

        below, above = geometry.nearest_valid_input_sizes(min(side, 320), depth=config.depth)
        return below if below is not None else above

    def _train_job(self, run, pairs, save_to: Path):
        from ..io import atomic_path
        from ..train import TrainCallbacks, train_on_pairs

        folder = Path(tempfile.mkdtemp(prefix="unetkit-train-"))
        try:
            result = train_on_pairs(run, pairs, [], folder / "run", log=lambda m: None,
                                    callbacks=TrainCallbacks(on_record=self.records.append,
                                                             should_stop=self._stop.is_set))
            with atomic_path(save_to) as tmp:
                shutil.copyfile(folder / "run" / "last.pt", tmp)
        except Exception as exc:  # shown as one line, never as a traceback
            return _Outcome("failed", _one_line(exc))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return result, save_to

    def _trained(self, value) -> None:
        if isinstance(value, _Outcome):
            self.status.value = value.status
            _error(value.message)
            return
        result, save_to = value
        self.result = result
        self._draw_loss()
        self.status.value = f"trained {result.steps} steps in {result.wall_time_s:.0f} s; saved {save_to}"
        segment = self._segment_widget()
        if segment is not None:  # show the new model's prediction of the image
            segment.model_path.value = str(save_to)
            segment.image.value = self.image.value
            segment.run()

    def _segment_widget(self):
        for widget in list(getattr(self.viewer.window, "dock_widgets", {}).values()):  # the docked inner widgets
            if isinstance(widget, SegmentWidget):
                return widget
            owner = getattr(widget, "_magic_widget", None)
            if isinstance(owner, SegmentWidget):
                return owner
        return getattr(self, "segment", None)

    def _reset(self) -> None:
        self.timer.stop()
        self.train_button.enabled, self.stop_button.enabled = True, False
