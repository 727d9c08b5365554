"""Answers and queries in other tools' formats: CSV and Label Studio.

CSV: one row per pixel, columns ``image,y,x,label`` (``image`` the path
relative to the project's images folder, or the bare file name when it is
unique; ``y``, ``x`` original-resolution pixel coordinates; ``label`` a class
name, ``void``, or empty for "not answered").

Label Studio: the export is a task list, one task per image, the queried
pixels as ``KeyPointLabels`` predictions whose ``x``/``y`` are the pixel
centres in percent of the original width/height; ``label_config.xml`` beside
it is the matching labeling interface. The import reads Label Studio's JSON
export of those tasks (``annotations[].result[]`` of type ``keypointlabels``);
images uploaded to Label Studio, which it names
``/data/upload/<project>/<8 hex digits>-NAME``, are matched by ``NAME``.

Both readers take UTF-8 files only, and report what they cannot read
(a folder, another encoding, a malformed row) with the file and the line
or task, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from xml.sax.saxutils import quoteattr

from skal_seg.labeling.store import VOID, Answer

CSV_COLUMNS = ("image", "y", "x", "label")

#: Label Studio's URL of an uploaded file: ``/data/upload/<project id>/<8 hex digits>-<the file's own name>``.
_UPLOAD = re.compile(r"(?:^|/)data/upload/\d+/[0-9a-fA-F]{8}-([^/]+)$")


def _read_text(path: str | Path) -> str:
    """A UTF-8 file's text (a BOM dropped); a folder or another encoding raises ValueError naming file and line."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the answers file (CSV or Label Studio JSON)")
    if not path.exists():
        raise FileNotFoundError(f"answers file not found: {path}")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        column = len(data[data.rfind(b"\n", 0, err.start) + 1 : err.start].decode("utf-8", "replace")) + 1
        raise ValueError(f"{path}: line {line}, column {column}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                         f"save the file as UTF-8") from None


def _int(text, what: str) -> int:
    value = float(str(text).strip())
    if not value.is_integer():
        raise ValueError(f"{what} must be a whole pixel coordinate, got {text!r}")
    return int(value)


def read_csv(path: str | Path) -> tuple[list[Answer], list[str]]:
    """Rows of an answers CSV and the problems found while parsing.

    Parameters
    ----------
    path : path

    Returns
    -------
    rows : list of Answer
        Well-formed rows (``where`` = ``"line N"``, counting the header as line 1).
    problems : list of str
        Malformed rows (missing column, non-integer coordinate).

    Raises
    ------
    ValueError
        The header lacks one of ``image, y, x, label``, the file is not
        UTF-8 text, or ``path`` is a folder.
    FileNotFoundError
        No such file.
    """
    rows, problems = [], []
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: the header must name the columns {','.join(CSV_COLUMNS)}; missing {missing}")
        for rec in reader:
            n = reader.line_num  # the row's last physical line (a quoted field may span several)
            try:
                if rec["image"] is None or rec["label"] is None:
                    raise ValueError("too few columns")
                rows.append(Answer(f"line {n}", rec["image"], _int(rec["y"], "y"), _int(rec["x"], "x"),
                                   rec["label"]))
            except (ValueError, TypeError, OverflowError) as err:
                problems.append(f"line {n}: {err}")
    except csv.Error as err:  # a field over csv's size limit, ...: the rest of the file cannot be trusted
        problems.append(f"line {reader.reader.line_num}: {err} (reading stopped here)")
    return rows, problems


def write_csv(queries: list[dict], path: str | Path) -> Path:
    """Write queries as an answers CSV (``label`` filled for answered ones, empty otherwise).

    Parameters
    ----------
    queries : list of dict
        As :meth:`LabelingProject.queries` returns them.
    path : path

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for q in queries:
            w.writerow([q["path"], q["y"], q["x"], q["label"] or ""])
    return path


def label_studio_config(class_names: list[str]) -> str:
    """Label Studio labeling interface for point answers (the classes plus ``void``)."""
    labels = "\n".join(f"    <Label value={quoteattr(n)}/>" for n in [*class_names, VOID])
    return ('<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
            f'  <KeyPointLabels name="label" toName="image" smart="false">\n{labels}\n  </KeyPointLabels>\n</View>\n')


def write_labelstudio(queries: list[dict], class_names: list[str], out: str | Path, image_prefix: str = "") -> list[Path]:
    """Write ``tasks.json`` (queries as KeyPoint predictions) and ``label_config.xml`` into ``out``.

    Parameters
    ----------
    queries : list of dict
        As :meth:`LabelingProject.queries` returns them (``label`` None
        for pending ones).
    class_names : list of str
    out : path
        Output folder.
    image_prefix : str, default=""
        Prepended to each image's relative path in ``data.image`` (e.g.
        ``"/data/local-files/?d=photos/"`` for Label Studio's local storage).

    Returns
    -------
    list of Path
        The two files.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tasks: dict[str, dict] = {}
    for q in queries:
        task = tasks.setdefault(q["path"], {
            "data": {"image": image_prefix + q["path"], "skal_seg_image": q["path"]},
            "predictions": [{"model_version": "skal-seg", "result": []}],
        })
        task["predictions"][0]["result"].append({
            "id": f"q{q['id']}", "type": "keypointlabels", "from_name": "label", "to_name": "image",
            "original_width": q["width"], "original_height": q["height"], "image_rotation": 0,
            "value": {"x": 100.0 * (q["x"] + 0.5) / q["width"], "y": 100.0 * (q["y"] + 0.5) / q["height"],
                      "width": 0.5, "keypointlabels": [q["label"]] if q["label"] else []},
        })
    tasks_path, config_path = out / "tasks.json", out / "label_config.xml"
    tasks_path.write_text(json.dumps(list(tasks.values()), indent=1))
    config_path.write_text(label_studio_config(class_names))
    return [tasks_path, config_path]


def _labelstudio_image(data) -> str:
    """The project image a task's ``data`` names ("" when none): see :func:`read_labelstudio`."""
    if not isinstance(data, dict):
        return ""
    own = data.get("skal_seg_image")
    if isinstance(own, str) and own:
        return own
    image = data.get("image")
    if not isinstance(image, str):
        return ""
    image = image.split("?d=")[-1]  # local storage: /data/local-files/?d=<path>
    upload = _UPLOAD.search(image)
    return upload.group(1) if upload else image


def _keypoint(value) -> tuple[float, float, str]:
    """``(y, x, label)`` of a keypoint result's ``value``; ValueError saying what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"value must be an object, got {value!r}")
    labels = value.get("keypointlabels") or []
    if not isinstance(labels, list) or len(labels) != 1:
        raise ValueError(f"expected one label per point, got {labels!r}")
    if not isinstance(labels[0], str):
        raise ValueError(f"the label must be text, got {labels[0]!r}")
    coords = []
    for axis in ("y", "x"):
        c = value.get(axis)
        if isinstance(c, bool) or not isinstance(c, (int, float)):
            raise ValueError(f"{axis} must be a number (percent), got {c!r}")
        c = float(c)  # OverflowError for an integer beyond float range, caught by the caller
        if not math.isfinite(c):
            raise ValueError(f"coordinates must be finite, got {axis}={value.get(axis)!r}")
        coords.append(c)
    return coords[0], coords[1], labels[0]


def read_labelstudio(path: str | Path) -> tuple[list[Answer], list[str]]:
    """Answers in a Label Studio JSON export (keypoint annotations) and the problems found.

    The image is ``data.skal_seg_image`` when present (tasks exported by
    :func:`write_labelstudio`), else the path in ``data.image`` (after
    ``?d=`` for Label Studio's local storage; an uploaded image's
    ``/data/upload/3/8f3a2b1c-NAME.png`` gives ``NAME.png``), matched by
    file name when the path is not the project's. Percent coordinates
    become the original pixel they fall in (using the project's size of the
    image, whatever size Label Studio saw). Cancelled annotations are
    skipped; so are results of other types (rectangles, ...).

    Parameters
    ----------
    path : path

    Returns
    -------
    rows : list of Answer
        ``where`` = ``"task N, result M"`` (1-based positions in the file).
    problems : list of str
        Tasks, annotations and results of the wrong shape (a number where
        a list belongs, a label that is no text, ...), each named.

    Raises
    ------
    ValueError
        The file is not JSON, not UTF-8, not a list of tasks, or a folder.
    FileNotFoundError
        No such file.
    """
    try:
        tasks = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be a Label Studio export") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: expected a Label Studio JSON export (a list of tasks)")
    rows, problems = [], []
    for t, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            problems.append(f"task {t}: a task must be an object, got {task!r:.60}")
            continue
        image = _labelstudio_image(task.get("data"))
        if not image:
            problems.append(f"task {t}: no data.image (data must be an object naming the image)")
            continue
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            problems.append(f"task {t}: annotations must be a list, got {annotations!r:.60}")
            continue
        m = 0
        for a, annotation in enumerate(annotations, start=1):
            results = annotation.get("result", []) if isinstance(annotation, dict) else None
            if not isinstance(results, list):
                problems.append(f"task {t}, annotation {a}: expected an object with a result list, "
                                f"got {annotation!r:.60}")
                continue
            if annotation.get("was_cancelled"):
                continue
            for result in results:
                m += 1
                where = f"task {t}, result {m}"
                if not isinstance(result, dict):
                    problems.append(f"{where}: a result must be an object, got {result!r:.60}")
                    continue
                if result.get("type") != "keypointlabels":
                    continue  # other region types are not pixel answers
                try:
                    y, x, label = _keypoint(result.get("value"))
                    rows.append(Answer(where, image, y, x, label, percent=True))
                except (ValueError, OverflowError) as err:
                    problems.append(f"{where}: malformed keypoint ({err})")
    return rows, problems
