"""Export: TorchScript, ONNX and bioimage.io packages that other tools run and that equal unetkit's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="needs the export extra")
pytest.importorskip("bioimageio.core", reason="needs the export extra")

from unetkit import UNet, load_model, predict, save_checkpoint  # noqa: E402
from unetkit.cli import main  # noqa: E402
from unetkit.export import ExportConfig, ExportError, export_model  # noqa: E402
from unetkit.export.graphs import check_sizes, plain_module  # noqa: E402
from unetkit.export.runtime import OnnxUNet  # noqa: E402
from unetkit.normalize import NormalizationConfig  # noqa: E402


def _trained(tmp_path_factory, **model_kwargs):
    """A tiny model with non-trivial weights (random He init plus a few Adam steps on generated data)."""
    from unetkit.data import make_pairs
    from unetkit.model import ModelConfig
    from unetkit.synthetic import make_em_dataset
    from unetkit.train import RunConfig, TrainConfig, train_on_pairs
    from unetkit.weights import WeightMapConfig

    samples = make_em_dataset(2, (96, 96), seed=1)
    mcfg = ModelConfig(class_names=("membrane", "cell"), **model_kwargs)
    pairs = make_pairs([s.image for s in samples], [s.labels for s in samples], normalization=mcfg.normalization,
                       weight_config=WeightMapConfig(w0=0.0))
    run = RunConfig(model=mcfg, weights=WeightMapConfig(w0=0.0),
                    train=TrainConfig(steps=4, tile=124 if mcfg.depth == 2 else 188 + 16, optimizer="adam", lr=1e-3,
                                      val_every=4, checkpoint_every=4, plots=False, progress=False))
    out = tmp_path_factory.mktemp("train")
    train_on_pairs(run, pairs[:1], pairs[1:], out, log=lambda m: None)
    return out / "best.pt"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    ckpt = _trained(tmp_path_factory, base_features=2, batch_norm=True)
    out = tmp_path_factory.mktemp("export") / "model"
    result = export_model(ckpt, out, ExportConfig(zip=True, authors=("Test Author",)))
    return ckpt, out, result


def test_the_graphs_equal_pytorch_at_three_sizes(exported):
    ckpt, out, result = exported
    model = load_model(ckpt)
    for variant in ("valid", "same"):
        assert result["checks"][variant]["torchscript"] <= 1e-5
        assert result["checks"][variant]["onnx"] <= 1e-4
        module = plain_module(model, variant)
        scripted = torch.jit.load(str(out / "torchscript" / f"unet_{variant}.pt"))
        import onnxruntime as ort

        session = ort.InferenceSession(str(out / "onnx" / f"unet_{variant}.onnx"), providers=["CPUExecutionProvider"])
        sizes = check_sizes(model.config, variant)
        assert len({h for h, _ in sizes} | {w for _, w in sizes}) > 2 and any(h != w for h, w in sizes)
        for h, w in sizes:
            x = torch.randn(2, 1, h, w, generator=torch.Generator().manual_seed(h * w))
            with torch.no_grad():
                ref = module(x)
                assert (scripted(x) - ref).abs().max() <= 1e-5
            assert np.abs(session.run(None, {"input": x.numpy()})[0] - ref.numpy()).max() <= 1e-4
            if variant == "same":
                assert ref.shape[-2:] == (h, w)
            else:
                assert ref.shape[-2:] == model.output_shape((h, w))


def test_the_packages_pass_bioimageio_test_for_all_three_weight_formats(exported):
    from bioimageio.core import test_description

    _, out, _ = exported
    for variant in ("valid", "same"):
        for weight_format in ("pytorch_state_dict", "torchscript", "onnx"):
            summary = test_description(out / "bioimageio" / variant / "rdf.yaml", weight_format=weight_format)
            assert summary.status == "passed", summary.display() or (variant, weight_format)
    assert (out / "bioimageio" / "valid.zip").is_file() and (out / "bioimageio" / "same.zip").is_file()


def test_the_package_describes_the_size_rule_and_the_paper(exported):
    import typing

    import yaml
    from bioimageio.spec.model.v0_5 import ModelDescr

    _, out, _ = exported
    rdf = yaml.safe_load((out / "bioimageio" / "valid" / "rdf.yaml").read_text())
    assert (rdf["format_version"],) == typing.get_args(ModelDescr.model_fields["format_version"].annotation)
    y = [a for a in rdf["inputs"][0]["axes"] if a.get("id") == "y"][0]
    assert y["size"] == {"min": 188, "step": 16}
    oy = [a for a in rdf["outputs"][0]["axes"] if a.get("id") == "y"][0]
    assert oy["size"]["offset"] == -184
    assert set(rdf["weights"]) == {"pytorch_state_dict", "torchscript", "onnx"}
    assert rdf["weights"]["torchscript"]["parent"] == "pytorch_state_dict"
    assert any(c.get("doi") == "10.1007/978-3-319-24574-4_28" for c in rdf["cite"])
    assert "# Validation" in (out / "bioimageio" / "valid" / "README.md").read_text()
    same = yaml.safe_load((out / "bioimageio" / "same" / "rdf.yaml").read_text())
    sy = [a for a in same["outputs"][0]["axes"] if a.get("id") == "y"][0]
    assert sy["size"].get("offset", 0) == 0


def test_bioimageio_core_on_a_real_image_equals_unetkit_predict(exported, data_dir):
    """The same-size package through bioimageio.core's own prediction: equal to unetkit predict, borders included."""
    from bioimageio.core import create_prediction_pipeline, load_description
    from bioimageio.core import predict as bio_predict

    from unetkit.io import read_image

    ckpt, out, _ = exported
    image = read_image(data_dir / "isbi2012" / "test" / "images" / "07.png").astype(np.float32)  # 512 x 512
    ref = predict(load_model(ckpt), image)
    descr = load_description(out / "bioimageio" / "same" / "rdf.yaml")
    for weight_format in ("pytorch_state_dict", "torchscript", "onnx"):
        pipeline = create_prediction_pipeline(descr, weight_format=weight_format, devices=["cpu"])
        got = bio_predict(model=pipeline, inputs={"raw": image[None, None]}).members["probabilities"]
        assert np.abs(got.data.to_numpy()[0] - ref).max() <= 1e-4, weight_format


@pytest.mark.parametrize("norm", [NormalizationConfig("zscore"), NormalizationConfig("percentile", 2.0, 98.0),
                                  NormalizationConfig("fixed", 10.0, 200.0)])
def test_the_packages_preprocessing_is_unetkits_normalisation(tmp_path, norm):
    from bioimageio.core import create_prediction_pipeline, load_description
    from bioimageio.core.digest_spec import create_sample_for_model

    from unetkit.normalize import intensity_range, normalize

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", UNet(1, 2, base_features=1, depth=2, normalization=norm))
    export_model(ckpt, tmp_path / "out", ExportConfig(formats=("bioimageio",)))
    descr = load_description(tmp_path / "out" / "bioimageio" / "valid" / "rdf.yaml")
    image = (np.random.default_rng(3).gamma(2.0, 30.0, (96, 120))).astype(np.float32)
    sample = create_sample_for_model(descr, inputs={"raw": image[None, None]})
    pipeline = create_prediction_pipeline(descr, weight_format="onnx", devices=["cpu"])
    pipeline.apply_preprocessing(sample)
    theirs = sample.members["raw"].data.to_numpy()[0]
    offset, scale = intensity_range(image, norm, channels=False)
    ours = normalize(image[None], offset, scale)
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)


def test_what_cannot_be_expressed_is_refused_and_nothing_is_written(tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.pt", UNet(1, 2, base_features=1, depth=2,
                                                   normalization=NormalizationConfig("dtype")))
    with pytest.raises(ExportError, match="dtype"):
        export_model(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep")
    with pytest.raises(ExportError, match="not empty"):
        export_model(save_checkpoint(tmp_path / "ok.pt", UNet(1, 2, base_features=1, depth=2)), tmp_path / "busy")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["x"]
    with pytest.raises(ExportError, match="format"):
        ExportConfig(formats=("tflite",))


def test_onnxruntime_backend_equals_torch_and_info_reads_packages(exported, tmp_path, capsys):
    from unetkit.io import write_png

    ckpt, out, _ = exported
    image = (np.random.default_rng(0).random((150, 210)) * 255).astype(np.uint8)
    write_png(tmp_path / "img.png", image)
    model = load_model(ckpt)
    ref = predict(model, image)
    for source in (out / "onnx" / "unet_valid.onnx", out / "bioimageio" / "valid", out / "bioimageio" / "valid.zip"):
        assert np.abs(predict(OnnxUNet.load(source), image) - ref).max() <= 1e-4, source
    assert np.abs(predict(OnnxUNet.from_model(model), image, tta=True) - predict(model, image, tta=True)).max() <= 1e-4
    for args in (["--backend", "onnxruntime"], []):
        code = main(["predict", str(ckpt if args else out / "onnx" / "unet_valid.onnx"), str(tmp_path / "img.png"),
                     "--out", str(tmp_path / f"p{len(args)}"), "--quiet", *args])
        assert code == 0
    import tifffile

    a, b = (tifffile.imread(tmp_path / f"p{n}" / "img_prob.tif") for n in (0, 2))
    assert np.abs(a - b).max() <= 1e-4 and np.abs(a - ref[1]).max() <= 1e-4
    capsys.readouterr()
    assert main(["info", str(out / "bioimageio" / "valid"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["export"] == "bioimageio" and info["variant"] == "valid" and info["config"]["batch_norm"] is True
    assert set(info["weights"]) == {"onnx", "pytorch_state_dict", "torchscript"}
    assert main(["predict", str(out / "onnx" / "unet_same.onnx"), str(tmp_path / "img.png"), "--out",
                 str(tmp_path / "p9")]) == 2  # the same-size graph pads itself: refused with a hint
