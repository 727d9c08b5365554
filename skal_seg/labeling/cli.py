"""``skal-seg init|query|label|import|export|status|predict``: a labeling project from the command line.

:func:`add_subcommands` adds them to the ``skal-seg`` parser; each sets
``run_labeling`` to its handler, which ``skal_seg.cli.main`` calls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skal_seg.distributed import add_ray_arguments, executor_from_args

#: The subcommands this module adds.
COMMANDS = ("init", "query", "label", "import", "export", "status", "predict")


def _fail(err: Exception) -> SystemExit:
    return SystemExit(f"skal-seg: {err}")


def _open(args, executor=None):
    from skal_seg.labeling.project import LabelingProject

    try:
        return LabelingProject(args.project, progress=not getattr(args, "quiet", False), executor=executor)
    except FileNotFoundError as err:
        raise _fail(err) from None


def _init(args) -> int:
    from skal_seg.labeling.project import LabelingProject

    settings = {k: v for k, v in {
        "candidates_per_image": args.candidates_per_image, "local_budget": args.local_budget,
        "keep_global": args.keep_global, "n_draws": args.n_draws, "seed": args.seed,
    }.items() if v is not None}
    if args.model is not None or args.timesteps is not None:
        settings["featurizer"] = {"model": args.model or "embedded", "timesteps": args.timesteps or [50, 150, 250]}
    try:
        project = LabelingProject.init(args.project, args.images, args.classes, exclude=args.exclude,
                                       working_size=args.working_size, settings=settings)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        raise _fail(err) from None
    print(f"{args.project}: {len(project.images())} images, {len(project.classes())} classes "
          f"({', '.join(c['name'] for c in project.classes())})")
    print(f"next: skal-seg query {args.project} --budget N")
    return 0


def _query(args) -> int:
    try:
        executor = executor_from_args(args)
    except ValueError as err:
        raise _fail(err) from None
    project = _open(args, executor)
    try:
        new = project.query(args.budget)
    except (ValueError, ImportError) as err:
        raise _fail(err) from None
    finally:
        if executor is not None:
            executor.shutdown()
    status = project.status()
    last = status["rounds"][-1]
    print(f"round {last['id']}: {len(new)} new queries (classifier trained on {last['trained_on']} "
          f"answers), {status['pending']} pending in all")
    print(f"next: skal-seg label {args.project}   (or export / import)")
    return 0


def _label(args) -> int:
    from skal_seg.labeling.server import serve

    project = _open(args)
    serve(project, host=args.host, port=args.port, open_browser=not args.no_browser)
    return 0


def _import(args) -> int:
    project = _open(args)
    try:
        report = project.import_answers(args.file, format=args.format)
    except (OSError, ValueError) as err:  # OSError: a file that cannot be read (permissions, a device)
        raise _fail(err) from None
    print(f"imported {report.added} answers from {args.file}; {report.already_known} already known, "
          f"{report.skipped_empty} rows without a label skipped")
    if report.extra:
        print(f"{len(report.extra)} answer(s) to pixels never queried (kept, flagged as extra):")
        for line in report.extra[:20]:
            print(f"  {line}")
    return 0


def _export(args) -> int:
    project = _open(args)
    paths = project.export(args.out, args.format, pending_only=not args.all, image_prefix=args.image_prefix)
    n = len(project.queries(pending_only=not args.all))
    print(f"{n} {'queries' if args.all else 'pending queries'} -> {', '.join(str(p) for p in paths)}")
    return 0


def _status(args) -> int:
    project = _open(args)
    s = project.status()
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    print(f"{args.project}: {s['images']} images, {len(s['rounds'])} rounds, {s['queries']} queries, "
          f"{s['answers']} answers ({s['extra']} extra), {s['pending']} pending")
    for r in s["rounds"]:
        print(f"  round {r['id']}: asked {r['budget']}, trained on {r['trained_on']} answers, {r['seconds']:.1f} s")
    print("answers per class: " + ", ".join(f"{k} {v}" for k, v in s["per_class"].items()))
    if args.eval is not None:
        try:
            quality = project.evaluate(args.eval)
        except (FileNotFoundError, ValueError) as err:
            raise _fail(err) from None
        print(f"mIoU on {args.eval} (at the working size): {quality['miou']:.4f}")
    return 0


def _predict(args) -> int:
    project = _open(args)
    try:
        paths = project.predict(args.images, args.out, exclude=args.exclude, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(err) from None
    print(f"{len(paths)} masks (and overlays) -> {args.out}")
    return 0


def add_subcommands(sub: argparse._SubParsersAction, formatter_class: type | None = None) -> None:
    """Add the labeling subcommands to the ``skal-seg`` subparsers.

    Parameters
    ----------
    sub : argparse subparsers action
        From ``ArgumentParser.add_subparsers``.
    formatter_class : argparse formatter class, optional
        The help formatter of every added subcommand (``skal-seg``'s shows defaults).
    """
    add_parser = sub.add_parser
    if formatter_class is not None:
        def add_parser(*args, **kwargs):
            return sub.add_parser(*args, formatter_class=formatter_class, **kwargs)
    project_help = "the project folder (made by 'skal-seg init')"
    p = add_parser("init", help="create a labeling project over a folder of images")
    p.add_argument("project", help="new project folder")
    p.add_argument("--images", required=True, help="folder of images (any layout, any format PIL reads)")
    p.add_argument("--classes", required=True, help="class names, comma-separated, or a text file with one per line")
    p.add_argument("--exclude", nargs="*", default=[], help="glob patterns of files to leave out, e.g. '*_label.png'")
    p.add_argument("--working-size", type=int, default=128, help="features are computed at this square size")
    p.add_argument("--candidates-per-image", type=int, default=None, help="candidate pixels per image (default 2500)")
    p.add_argument("--local-budget", type=int, default=None, help="MaxHerding picks per image (default 50)")
    p.add_argument("--keep-global", type=float, default=None, help="share of local picks kept globally (default 0.5)")
    p.add_argument("--n-draws", type=int, default=None, help="noisy diffusion draws for eDALD (default 5)")
    p.add_argument("--seed", type=int, default=None, help="seeds the queries and the classifier (default 0)")
    p.add_argument("--model", default=None, help="'embedded' (default), a save_pretrained folder or a hub id")
    p.add_argument("--timesteps", nargs="+", type=int, default=None, help="diffusion timesteps (default 50 150 250)")
    p.set_defaults(run_labeling=_init)

    p = add_parser("query", help="one round: train on the answers so far and ask for the next pixels")
    p.add_argument("project", help=project_help)
    p.add_argument("--budget", type=int, required=True, help="pixels to ask for")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_ray_arguments(p)
    p.set_defaults(run_labeling=_query)

    p = add_parser("label", help="answer the pending queries in a local web page")
    p.add_argument("project", help=project_help)
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    p.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    p.set_defaults(run_labeling=_label)

    p = add_parser("import", help="import answers from a CSV (image,y,x,label) or a Label Studio JSON export")
    p.add_argument("project", help=project_help)
    p.add_argument("file", help="a CSV file (image,y,x,label) or a Label Studio JSON export")
    p.add_argument("--format", choices=["auto", "csv", "labelstudio"], default="auto",
                   help="'auto': .json = Label Studio, anything else CSV")
    p.set_defaults(run_labeling=_import)

    p = add_parser("export", help="write the pending queries for another tool (CSV or Label Studio)")
    p.add_argument("project", help=project_help)
    p.add_argument("--format", choices=["csv", "labelstudio"], default="csv",
                   help="'csv': queries.csv (image,y,x,label); 'labelstudio': tasks with KeyPoint predictions")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--all", action="store_true", help="also the answered queries, with their labels")
    p.add_argument("--image-prefix", default="", help="Label Studio: prefix of each task's image path or URL")
    p.set_defaults(run_labeling=_export)

    p = add_parser("status", help="rounds, answers per class, pending queries")
    p.add_argument("project", help=project_help)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--eval", default=None,
                   help="a labeled split folder (NAME.png + NAME_label.png, project class ids): report mIoU")
    p.set_defaults(run_labeling=_status)

    p = add_parser("predict", help="full-resolution masks (PNG) and overlays with the current classifier")
    p.add_argument("project", help=project_help)
    p.add_argument("--images", default=None, help="folder or file of images (default: the project's images)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--exclude", nargs="*", default=[], help="glob patterns of files to leave out")
    p.add_argument("--overwrite", action="store_true",
                   help="replace masks and overlays already in --out (never an image)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run_labeling=_predict)
