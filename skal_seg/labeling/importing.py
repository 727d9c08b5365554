"""Checking answers before they are written: against the images, the classes, each other and the record.

Every import takes this path (answer files through
:meth:`~skal_seg.labeling.project.LabelingProject.import_answers`, the
benchmark's ground truth through
:meth:`~skal_seg.labeling.project.LabelingProject.import_rows`): the rows
are checked first, every bad one is reported at once, and nothing is
written unless all of them are good.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from skal_seg.labeling.contents import VOID_WORDS
from skal_seg.labeling.store import VOID, Answer


@dataclass
class ImportReport:
    """What :meth:`LabelingProject.import_answers` did.

    Attributes
    ----------
    added : int
        New answers written.
    already_known : int
        Rows that repeat a stored answer (same pixel, same class): skipped.
    extra : list of str
        Rows answering a pixel that was never queried (imported, flagged).
    skipped_empty : int
        Rows without a label (e.g. an exported pending query left blank).
    """

    added: int = 0
    already_known: int = 0
    extra: list = field(default_factory=list)
    skipped_empty: int = 0


class ImportValidationError(ValueError):
    """An import with bad rows; nothing was written. ``problems`` lists them."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        shown = "\n  ".join(problems[:50]) + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else "")
        super().__init__(f"{source}: {len(problems)} bad row(s), nothing imported:\n  {shown}")


def class_id_of(label: str, ids: dict[str, int]) -> int | None:
    """Class id of a label name, None for a void answer (any of :data:`~skal_seg.labeling.contents.VOID_WORDS`).

    Parameters
    ----------
    label : str
    ids : dict
        Class name -> id, in id order.

    Returns
    -------
    int or None

    Raises
    ------
    TypeError
        ``label`` is not text.
    ValueError
        An unknown name (the message lists the classes).
    """
    if not isinstance(label, str):
        raise TypeError(f"label must be a class name or 'void', got {label!r}")
    if label.strip().lower() in VOID_WORDS:
        return None
    if label.strip() in ids:
        return ids[label.strip()]
    raise ValueError(f"unknown class {label!r}; classes are {list(ids)} or 'void'")


def resolve_image(ref: str, by_path: dict, by_name: dict) -> dict | None:
    """The image record an import names: by its path relative to the images folder, or by a unique file name.

    Parameters
    ----------
    ref : str
        The image as the file names it.
    by_path, by_name : dict
        Image records by relative path, and lists of them by file name.

    Returns
    -------
    dict or None
        None when no image, or several, match.
    """
    ref = ref.strip().replace("\\", "/")
    if ref in by_path:
        return by_path[ref]
    name = ref.rsplit("/", 1)[-1]
    hits = by_name.get(name, [])
    return hits[0] if len(hits) == 1 else None


def check_rows(rows: Sequence[Answer], images: Sequence[dict], class_ids: dict, report: ImportReport,
               problems: list) -> dict[tuple, tuple]:
    """The answers ``rows`` give, checked against the images, the classes and each other.

    Returns ``(image_id, y, x) -> (class_id, where, rows)``, one entry
    per pixel (``rows``: how many rows give it); counts rows without a
    label in ``report``; appends each bad
    row to ``problems``. Nothing here can change while the import runs,
    so it needs no lock (see :func:`check_against_record`).
    """
    by_path = {im["path"]: im for im in images}
    by_name: dict[str, list] = {}
    for im in images:
        by_name.setdefault(im["path"].rsplit("/", 1)[-1], []).append(im)
    new: dict[tuple, tuple] = {}  # pixel -> (class_id, where, rows)
    for row in rows:
        if not isinstance(row.label, str):
            problems.append(f"{row.where}: the label must be text, got {row.label!r}")
            continue
        if not row.label.strip():
            report.skipped_empty += 1
            continue
        image = resolve_image(row.image, by_path, by_name)
        if image is None:
            ambiguous = len(by_name.get(row.image.strip().rsplit("/", 1)[-1], [])) > 1
            problems.append(f"{row.where}: {'ambiguous' if ambiguous else 'unknown'} image {row.image!r}"
                            + (" (give its path relative to the images folder)" if ambiguous else ""))
            continue
        y, x = row.y, row.x
        if row.percent:  # the pixel the point falls in; 100 % is the far edge, inside the last pixel
            if 0 <= y <= 100 and 0 <= x <= 100:
                y = min(image["height"] - 1, int(y * image["height"] // 100))
                x = min(image["width"] - 1, int(x * image["width"] // 100))
            else:
                y, x = -1, -1
        elif not (float(y).is_integer() and float(x).is_integer()):
            problems.append(f"{row.where}: pixel (y={row.y}, x={row.x}) must be whole rows and columns")
            continue
        if not (0 <= y < image["height"] and 0 <= x < image["width"]):
            what = f"point ({row.y:.2f} %, {row.x:.2f} %)" if row.percent else f"pixel (y={row.y}, x={row.x})"
            problems.append(f"{row.where}: {what} is outside {image['path']} "
                            f"({image['width']}x{image['height']})")
            continue
        y, x = int(y), int(x)
        try:
            class_id = class_id_of(row.label, class_ids)
        except ValueError:
            problems.append(f"{row.where}: unknown class {row.label!r} (valid: {', '.join(class_ids)}, or {VOID} "
                            f"for void / unsure)")
            continue
        key = (image["id"], y, x)
        if key in new:
            if new[key][0] != class_id:
                problems.append(f"{row.where}: {image['path']} (y={y}, x={x}) answered differently "
                                f"in {new[key][1]}")
            else:
                new[key] = (class_id, new[key][1], new[key][2] + 1)
            continue
        new[key] = (class_id, row.where, 1)
    return new


def check_against_record(new: dict, con, paths: dict, report: ImportReport, problems: list) -> dict:
    """The answers of ``new`` (see :func:`check_rows`) not stored yet; inside the import's write transaction.

    A pixel answered with another class (by the web page while the file
    was read, say) is a problem; with the same class it is counted as
    known (each row giving it); one nobody asked for is listed as extra in ``report``.
    Returns ``(image_id, y, x) -> (class_id, where, query_id or None)``.
    """
    cur = con.cursor()
    cur.row_factory = None  # plain tuples: this runs under the write lock, over every answer and query
    stored = {(i, y, x): c for i, y, x, c in cur.execute("SELECT image_id, y, x, class_id FROM answers")}
    asked = {(i, y, x): q for q, i, y, x in cur.execute("SELECT id, image_id, y, x FROM queries")}
    fresh = {}
    for key, (class_id, where, n_rows) in new.items():
        if key in stored:
            if stored[key] != class_id:
                problems.append(f"{where}: {paths[key[0]]} (y={key[1]}, x={key[2]}) already has a different "
                                f"stored answer (undo it first to change it)")
            else:
                report.already_known += n_rows
            continue
        query_id = asked.get(key)
        fresh[key] = (class_id, where, query_id)
        if query_id is None:
            report.extra.append(f"{where}: {paths[key[0]]} (y={key[1]}, x={key[2]})")
    return fresh

