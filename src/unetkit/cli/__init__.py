"""Command-line interface: a thin adapter over the public API, testable through ``main(argv)``.

``main(argv)`` returns the exit status: 0 on success, 2 for a user mistake
(missing file, unreadable image, wrong checkpoint, bad option, an output path
that cannot be written), reported as ONE line on stderr without a traceback;
every input and output path is checked before the work starts, and outputs
are written atomically, so a failed command leaves nothing partial. A
training run that diverges exits with 1.

A new command is a module here with an ``add_parser(sub)`` that sets
``func``; heavy imports stay inside the command function (``unetkit --help``
imports neither torch nor Qt).
"""

from __future__ import annotations

import argparse
import sys

from .common import UsageError

__all__ = ["main", "build_parser", "UsageError"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from . import analysis, export, predict, train

    parser = argparse.ArgumentParser(
        prog="unetkit",
        description="U-Net (Ronneberger et al. 2015) for biomedical image segmentation: train, segment, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"unetkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_demo_parser(sub)
    predict.add_parser(sub)
    analysis.add_parsers(sub)
    train.add_parser(sub)
    export.add_parser(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user mistake, 1 diverged training)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("unetkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stderr.close()
        return 0
    except (ValueError, OSError) as exc:
        print(f"unetkit {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a diverged training run: one line, no traceback
        from ..train import TrainingDiverged

        if not isinstance(exc, TrainingDiverged):
            raise
        print(f"unetkit {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
