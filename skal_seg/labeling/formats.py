"""Answers and queries in other tools' formats: CSV and Label Studio.

CSV: one row per pixel, columns ``image,y,x,label`` (``image`` the path
relative to the project's images folder, or the bare file name when it is
unique; ``y``, ``x`` original-resolution pixel coordinates; ``label`` a class
name, ``void``, or empty for "not answered").

Label Studio: the export is a task list, one task per image, the queried
pixels as ``KeyPointLabels`` predictions whose ``x``/``y`` are the pixel
centres in percent of the original width/height; ``label_config.xml`` beside
it is the matching labeling interface. The import reads Label Studio's JSON
export of those tasks (``annotations[].result[]`` of type ``keypointlabels``).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from xml.sax.saxutils import quoteattr

from skal_seg.labeling.store import VOID, Answer

CSV_COLUMNS = ("image", "y", "x", "label")


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
        The header lacks one of ``image, y, x, label``.
    """
    rows, problems = [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: the header must name the columns {','.join(CSV_COLUMNS)}; missing {missing}")
        for n, rec in enumerate(reader, start=2):
            try:
                if rec["image"] is None or rec["label"] is None:
                    raise ValueError("too few columns")
                rows.append(Answer(f"line {n}", rec["image"], _int(rec["y"], "y"), _int(rec["x"], "x"),
                                   rec["label"]))
            except (ValueError, TypeError) as err:
                problems.append(f"line {n}: {err}")
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


def read_labelstudio(path: str | Path) -> tuple[list[Answer], list[str]]:
    """Answers in a Label Studio JSON export (keypoint annotations) and the problems found.

    The image is ``data.skal_seg_image`` when present (tasks exported by
    :func:`write_labelstudio`), else the file name at the end of
    ``data.image``. Percent coordinates become the original pixel they fall
    in (using the project's size of the image, whatever size Label Studio
    saw). Cancelled annotations are skipped.

    Parameters
    ----------
    path : path

    Returns
    -------
    rows : list of Answer
        ``where`` = ``"task N, result M"`` (1-based positions in the file).
    problems : list of str

    Raises
    ------
    ValueError
        The file is not JSON or not a list of tasks.
    """
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ValueError(f"{path}: expected a Label Studio JSON export (a list of tasks)")
    rows, problems = [], []
    for t, task in enumerate(tasks, start=1):
        data = task.get("data", {}) if isinstance(task, dict) else {}
        image = data.get("skal_seg_image") or str(data.get("image", "")).split("?d=")[-1]
        if not image:
            problems.append(f"task {t}: no data.image")
            continue
        m = 0
        for annotation in task.get("annotations", []):
            if annotation.get("was_cancelled"):
                continue
            for result in annotation.get("result", []):
                m += 1
                where = f"task {t}, result {m}"
                if result.get("type") != "keypointlabels":
                    continue  # other region types are not pixel answers
                try:
                    v = result["value"]
                    labels = v.get("keypointlabels") or []
                    if len(labels) != 1:
                        raise ValueError(f"expected one label per point, got {labels}")
                    y, x = float(v["y"]), float(v["x"])
                    if not (math.isfinite(x) and math.isfinite(y)):
                        raise ValueError(f"coordinates must be finite, got x={v['x']!r}, y={v['y']!r}")
                    rows.append(Answer(where, image, y, x, labels[0], percent=True))
                except (KeyError, TypeError, ValueError) as err:
                    problems.append(f"{where}: malformed keypoint ({err})")
    return rows, problems
