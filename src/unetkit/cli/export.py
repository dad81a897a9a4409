"""``unetkit export``: a checkpoint as bioimage.io packages, TorchScript and ONNX."""

from __future__ import annotations

from .common import UsageError, add_quiet, log_for

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a checkpoint for Fiji, ilastik, QuPath, napari (bioimage.io, "
                                      "TorchScript, ONNX)",
                       description="Writes OUT/bioimageio/{valid,same}/ (bioimage.io model packages), "
                                   "OUT/torchscript/unet_{valid,same}.pt and OUT/onnx/unet_{valid,same}.onnx. "
                                   "'valid': the network's own size rule, output smaller by the context margin; "
                                   "'same': mirror padding inside the graph, output = input size. "
                                   "OUT must be new (or empty); nothing is left behind on failure.")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="new output folder")
    p.add_argument("--format", default="all", help="bioimageio, torchscript, onnx, all, or a comma-separated list")
    p.add_argument("--name", help="model name (bioimage.io)")
    p.add_argument("--description", help="one-line description")
    p.add_argument("--authors", help="author names separated by ';'")
    p.add_argument("--license", help="SPDX license id (default CC-BY-4.0)")
    p.add_argument("--cite", action="append", metavar="TEXT|DOI_OR_URL",
                   help="a citation besides the U-Net paper (repeatable)")
    p.add_argument("--zip", action="store_true", help="also zip each bioimage.io package")
    add_quiet(p)
    p.set_defaults(func=run)


def require_export_extra() -> None:
    """One clear line when the optional export dependencies are missing."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime", "bioimageio.spec") if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        raise UsageError(f"this needs the export extra ({', '.join(missing)} missing): pip install 'unetkit[export]'")


def run(args) -> int:
    require_export_extra()
    from ..export import FORMATS, ExportConfig, export_model

    formats = FORMATS if args.format == "all" else tuple(f.strip() for f in args.format.split(",") if f.strip())
    cite = []
    for entry in args.cite or []:
        text, sep, ref = entry.rpartition("|")
        if not sep or not text.strip() or not ref.strip():
            raise UsageError(f"--cite must look like 'TEXT|DOI_OR_URL', got {entry!r}")
        cite.append((text.strip(), ref.strip()))
    overrides = {k: v for k, v in (("name", args.name), ("description", args.description), ("license", args.license))
                 if v is not None}
    if args.authors is not None:
        overrides["authors"] = tuple(a.strip() for a in args.authors.split(";") if a.strip())
    config = ExportConfig(formats=formats, cite=tuple(cite), zip=args.zip, **overrides)
    result = export_model(args.checkpoint, args.out, config, log=log_for(args))
    for variant, check in result["checks"].items():
        print(f"{variant}: TorchScript max |diff| {check['torchscript']:.1e}, ONNX Runtime {check['onnx']:.1e} "
              f"(sizes {check['sizes']})")
    print(f"wrote {args.out}/: " + ", ".join(result["files"]))
    return 0
