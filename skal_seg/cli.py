"""The ``skal-seg`` command: the benchmark (``run``, ``plot``, ``report``), ``convert-adm``, ``adapt`` and a labeling
project (``init``, ``query``, ``label``, ``import``, ``export``, ``status``, ``predict``).

``run`` simulates active learning on images whose ground-truth labels are all
known: each strategy queries pixels, the runner reveals their labels (it
plays the annotator) and scores every round on a labeled test split. It
compares strategies and settings; it does not label new images.

Examples
--------
The offline quickstart (shipped CamVid sample, embedded diffusion model)::

    skal-seg run --data sample --rounds 4 --budget-per-image 2 --out results/quickstart

A folder of one's own (``train/`` and ``test/`` with ``NAME.jpg`` beside
``NAME_label.png``, the class names in ``classes.txt``), 40 pixels per round::

    skal-seg run --data my_data --budget 40 --rounds 5 --size 128 --out results/mine

The benchmark on full CamVid, every strategy, three seeds::

    skal-seg run --data ../shared/data/camvid --strategies all --seeds 0 1 2 \\
        --full-supervision --cache feature-cache --out results/camvid

The paper's settings with its ADM model (a GPU machine; see docs/gpu.md)::

    skal-seg run --preset paper --model 256x256_diffusion_uncond.pt --data ../shared/data/camvid

The same with the featurizing and the per-image herding on an existing Ray
cluster, one GPU per worker (``pip install "skal-seg[ray]"``; see
docs/distributed.md)::

    skal-seg run --preset paper --model 256x256_diffusion_uncond.pt --data ../shared/data/camvid \\
        --ray-address auto --gpus-per-worker 1

Notes
-----
Each package owns its subcommands as two modules: ``cli`` builds their parsers
(standard library and settings only) and names each handler as
``"module:function"``; ``commands`` holds the handlers, imported only when
the command runs. So ``skal-seg --help``, ``skal-seg COMMAND --help`` and
``--version`` import neither torch nor diffusers. Subcommands:
:mod:`skal_seg.benchmark.cli` (run, plot, report),
:mod:`skal_seg.diffusion.cli` (convert-adm, adapt) and :mod:`skal_seg.labeling.cli`
(init, query, label, import, export, status, predict). Every error the user
can fix ends the command with one line ``skal-seg: ...`` and exit status 1;
an interrupted run (Ctrl-C) exits with status 130 after saying what was saved
and how to resume.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import import_module, metadata

from skal_seg._cli import HelpFormatter, fail
from skal_seg.benchmark import cli as benchmark_cli
from skal_seg.diffusion import cli as diffusion_cli
from skal_seg.labeling import cli as labeling_cli


def _version() -> str:
    try:
        return metadata.version("skal-seg")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from skal_seg import __version__

        return __version__


def _parser(preset: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skal-seg", formatter_class=HelpFormatter,
        description=("Pixel-level active learning for semantic segmentation: which few pixels to label next.\n\n"
                     "'run' is a benchmark (a simulation): it needs ground-truth labels for every image, reveals "
                     "the labels of the pixels each strategy queries and scores every round.\n"
                     + benchmark_cli.LABELING_SENTENCE),
        epilog="'skal-seg COMMAND --help' lists a command's options with their defaults.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    benchmark_cli.add_subcommands(sub, preset)  # run, plot, report
    diffusion_cli.add_subcommands(sub)  # convert-adm, adapt
    labeling_cli.add_subcommands(sub)  # init, query, label, import, export, status, predict
    return p


def _handler(name: str):
    """The function a parser named as ``"module:function"`` (its module is imported now, not before)."""
    module, function = name.split(":")
    return getattr(import_module(module), function)


# torch's CPU allocator fails with a RuntimeError, not a MemoryError
_TORCH_NO_MEMORY = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")


def _out_of_memory(err: BaseException) -> str | None:
    """The one-line message for an allocation that failed, or None when ``err`` is something else."""
    if isinstance(err, MemoryError):
        detail = str(err).split(" for an array")[0]  # numpy: "Unable to allocate 59.6 GiB for an array with ..."
    elif isinstance(err, RuntimeError) and (found := _TORCH_NO_MEMORY.search(str(err))):
        detail = f"torch could not allocate {int(found.group(1)) / 2**30:.1f} GiB"
    else:
        return None
    return (f"out of memory ({detail or 'an allocation failed'}): use a smaller --size or --input-size, or fewer "
            "images; a run keeps the rounds it completed (--resume continues)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``skal-seg`` command.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 130 when a run was interrupted (Ctrl-C)
        after saving its completed rounds, plot and summary.

    Raises
    ------
    SystemExit
        Bad arguments, unknown strategies, an unreadable dataset folder or
        file, invalid settings, an unreadable results folder or an
        allocation that failed for want of memory (with a one-line message
        naming the problem, status 1; argparse errors status 2).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if getattr(args, "preset", None):
        args = _parser(args.preset).parse_args(argv)  # preset defaults, explicit flags still win
    args.argv = argv  # a handler may repeat the command (run's resume hint)
    try:
        return _handler(args.handler)(args)
    except (MemoryError, RuntimeError) as err:
        message = _out_of_memory(err)
        if message is None:
            raise
        raise fail(message) from None


if __name__ == "__main__":
    sys.exit(main())
