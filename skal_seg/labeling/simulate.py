"""A simulated annotator: ground-truth label maps answering a project's queries through its API.

What the benchmark runner does with its oracle, done the way a person's
answers arrive (:meth:`LabelingProject.answer`, one transaction each), so a
session can be replayed and compared with ``skal-seg run``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from skal_seg.data import IGNORE_INDEX
from skal_seg.labeling.project import LabelingProject
from skal_seg.labeling.store import VOID


def answer_from_label_maps(
    project: LabelingProject, label_map: Callable[[str], np.ndarray], source: str = "ground truth"
) -> int:
    """Answer every pending query from a ground-truth label map.

    Parameters
    ----------
    project : LabelingProject
    label_map : callable
        ``label_map(path) -> ndarray (H, W)`` of class ids (``255`` = void)
        at the image's original size, ``path`` being the image's path
        relative to the project's images folder.
    source : str, default="ground truth"
        Recorded with each answer.

    Returns
    -------
    int
        Answers given.

    Raises
    ------
    ValueError
        A label map whose size differs from its image, or a value that is no
        class id of the project.
    """
    names = [c["name"] for c in project.classes()]
    maps: dict[str, np.ndarray] = {}
    pending = project.queries(pending_only=True)
    for q in pending:
        if q["path"] not in maps:
            maps[q["path"]] = np.asarray(label_map(q["path"]))
            if maps[q["path"]].shape[:2] != (q["height"], q["width"]):
                raise ValueError(f"the label map of {q['path']} is {maps[q['path']].shape[:2]}, "
                                 f"the image {(q['height'], q['width'])}")
        value = int(maps[q["path"]][q["y"], q["x"]])
        if value != IGNORE_INDEX and not 0 <= value < len(names):
            raise ValueError(f"{q['path']} (y={q['y']}, x={q['x']}): label value {value} is no class id "
                             f"(0..{len(names) - 1}) or {IGNORE_INDEX}")
        project.answer(q["id"], VOID if value == IGNORE_INDEX else names[value], source=source)
    return len(pending)
