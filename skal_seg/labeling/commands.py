"""What ``skal-seg init|query|label|import|export|status|predict`` do (their parsers: :mod:`skal_seg.labeling.cli`)."""

from __future__ import annotations

import argparse
import json
import sys

from skal_seg._cli import fail, filter_bank_options
from skal_seg.distributed import executor_from_args
from skal_seg.engine.settings import features_and_model
from skal_seg.labeling.project import LabelingProject
from skal_seg.labeling.server import serve


def _open(args, executor=None):
    try:
        return LabelingProject(args.project, progress=not getattr(args, "quiet", False), executor=executor)
    except FileNotFoundError as err:
        raise fail(err) from None


def init(args: argparse.Namespace) -> int:
    """``skal-seg init``."""
    settings = {k: v for k, v in {
        "candidates_per_image": args.candidates_per_image, "local_budget": args.local_budget,
        "keep_global": args.keep_global, "n_draws": args.n_draws, "seed": args.seed,
    }.items() if v is not None}
    try:
        features, model = features_and_model(args.features, args.model or "embedded")
    except ValueError as err:
        raise fail(err) from None
    bank = filter_bank_options(args)
    settings.update({"features": features, **({"head": args.classifier} if args.classifier else {}),
                     **({"strategy": args.strategy} if args.strategy else {}),
                     **({"filter_bank": bank} if bank else {})})
    if model != "embedded" or args.timesteps is not None or args.pad or args.input_size:
        settings["featurizer"] = {"model": model, "timesteps": args.timesteps or [50, 150, 250],
                                  **({"pad": args.pad} if args.pad else {}),
                                  **({"input_size": args.input_size} if args.input_size else {})}
    size = args.size
    if args.working_size is not None:
        print("skal-seg: --working-size is deprecated and goes in the next release; use --size", file=sys.stderr)
        if size is not None and size != args.working_size:
            raise fail(f"--size {size} and --working-size {args.working_size} disagree; give --size only")
        size = args.working_size
    try:
        project = LabelingProject.init(args.project, args.images, args.classes, exclude=args.exclude,
                                       working_size=128 if size is None else size, settings=settings, roi=args.roi,
                                       data=args.data)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        raise fail(err) from None
    print(f"{args.project}: {len(project.images())} images"
          + (" (queries only inside each one's region of interest)" if args.roi else "")
          + f", {len(project.classes())} classes ({', '.join(c['name'] for c in project.classes())})")
    print(f"next: skal-seg query {args.project} --budget N")
    return 0


def query(args: argparse.Namespace) -> int:
    """``skal-seg query``."""
    try:
        executor = executor_from_args(args)
    except ValueError as err:
        raise fail(err) from None
    project = _open(args, executor)
    try:
        new = project.query(args.budget, strategy=args.strategy)
    except (ValueError, ImportError) as err:
        raise fail(err) from None
    finally:
        if executor is not None:
            executor.shutdown()
    status = project.status()
    last = status["rounds"][-1]
    print(f"round {last['id']}: {len(new)} new queries (classifier trained on {last['trained_on']} "
          f"answers), {status['pending']} pending in all")
    print(f"next: skal-seg label {args.project}   (or export / import)")
    return 0


def label(args: argparse.Namespace) -> int:
    """``skal-seg label``."""
    project = _open(args)
    serve(project, host=args.host, port=args.port, open_browser=not args.no_browser)
    return 0


def import_answers(args: argparse.Namespace) -> int:
    """``skal-seg import``."""
    project = _open(args)
    try:
        report = project.import_answers(args.file, format=args.format)
    except (OSError, ValueError) as err:  # OSError: a file that cannot be read (permissions, a device)
        raise fail(err) from None
    print(f"imported {report.added} answers from {args.file}; {report.already_known} already known, "
          f"{report.skipped_empty} rows without a label skipped")
    if report.extra:
        print(f"{len(report.extra)} answer(s) to pixels never queried (kept, flagged as extra):")
        for line in report.extra[:20]:
            print(f"  {line}")
    return 0


def export(args: argparse.Namespace) -> int:
    """``skal-seg export``."""
    project = _open(args)
    paths = project.export(args.out, args.format, pending_only=not args.all, image_prefix=args.image_prefix)
    n = len(project.queries(pending_only=not args.all))
    print(f"{n} {'queries' if args.all else 'pending queries'} -> {', '.join(str(p) for p in paths)}")
    return 0


_EVAL_OPTIONS = {"images": "--eval-images", "labels": "--eval-labels", "roi": "--eval-roi",
                 "label_map": "--label-map", "ignore": "--ignore"}


def status(args: argparse.Namespace) -> int:
    """``skal-seg status``."""
    files = dict(images=args.eval_images, labels=args.eval_labels, roi=args.eval_roi, label_map=args.label_map,
                 ignore=args.ignore)
    if args.eval is None and any(v is not None for v in files.values()):
        given = [_EVAL_OPTIONS[k] for k, v in files.items() if v is not None]
        raise fail(f"{', '.join(given)} describe the evaluation images: give their folder with --eval DIR")
    project = _open(args)
    s = project.status()
    quality = None
    if args.eval is not None:
        try:
            quality = project.evaluate(args.eval, **files)
        except (FileNotFoundError, ValueError) as err:
            raise fail(err) from None
    if args.json:
        print(json.dumps(s if quality is None else {**s, "evaluation": {"folder": args.eval, **quality}}, indent=1))
        return 0
    print(f"{args.project}: {s['images']} images, {len(s['rounds'])} rounds, {s['queries']} queries, "
          f"{s['answers']} answers ({s['extra']} extra), {s['pending']} pending")
    for r in s["rounds"]:
        print(f"  round {r['id']} ({r['strategy']}): asked {r['budget']}, trained on {r['trained_on']} answers, "
              f"{r['seconds']:.1f} s")
    print("answers per class: " + ", ".join(f"{k} {v}" for k, v in s["per_class"].items()))
    print(f"feature cache: {s['cache_bytes'] / 1e6:.1f} MB in {args.project}/cache (recomputable; deleting it "
          f"costs the next query its features)")
    if quality is not None:
        print(f"mIoU on {args.eval} (at the images' own size, as predict masks them): {quality['miou']:.4f}")
    return 0


def predict(args: argparse.Namespace) -> int:
    """``skal-seg predict``."""
    project = _open(args)
    try:
        paths = project.predict(args.images, args.out, exclude=args.exclude, overwrite=args.overwrite)
    except (FileNotFoundError, ValueError) as err:
        raise fail(err) from None
    print(f"{len(paths)} masks (and overlays) -> {args.out}")
    return 0
