"""A simulated annotator: ground-truth label maps answering a project's queries through its API.

The benchmark runner (:func:`~skal_seg.benchmark.runner.run_experiment`) labels
pixels this way: its picks become the queries of a labeling project in the
results folder, the ground truth answers them through the import path a
person's answer files take (:meth:`LabelingProject.import_rows`: validated,
one transaction per round), and the classifier trains on the answers read
back from the project (:meth:`LabelingProject.labels`). A session can also
be replayed with :func:`answer_from_label_maps` and compared with
``skal-seg run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from skal_seg.data import IGNORE_INDEX, SegmentationSplit
from skal_seg.engine.settings import settings_differences
from skal_seg.labeling.project import LabelingProject
from skal_seg.labeling.store import DB_NAME, VOID, Answer, ProjectStore


def answer_from_label_maps(
    project: LabelingProject, label_map: Callable[[str], np.ndarray], source: str = "ground truth"
) -> int:
    """Answer every pending query from a ground-truth label map, in one import.

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
        class id of the project (nothing is written).
    """
    names = [c["name"] for c in project.classes()]
    maps: dict[str, np.ndarray] = {}
    pending = project.queries(pending_only=True)
    rows = []
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
        label = VOID if value == IGNORE_INDEX else names[value]
        rows.append(Answer(f"query {q['id']}", q["path"], q["y"], q["x"], label))
    if rows:
        project.import_rows(rows, source)
    return len(rows)


class GroundTruthAnnotator:
    """The labeling project of a benchmark run: the runner's picks are its queries, the ground truth answers them.

    The project (``project.sqlite`` in the run's results folder, see
    :meth:`LabelingProject.for_pool`) records the pool images by name at the
    working size, so a pixel ``(y, x)`` of the project is the flat candidate
    pixel ``y * W + x`` of the runner. Open it with :meth:`open`.

    Parameters
    ----------
    project : LabelingProject
    pool : SegmentationSplit
        The pool; its labels are the ground truth.
    pixels : list of ndarray
        Candidate pixels (flat, sorted) of each pool image.
    offsets : ndarray of shape (n_images + 1,)
        First candidate row of each image.
    """

    SOURCE = "ground truth"

    def __init__(self, project: LabelingProject, pool: SegmentationSplit, pixels: list, offsets: np.ndarray):
        self.project = project
        self.pool = pool
        self.pixels = pixels
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self._width = pool.images.shape[2]
        self._index = {name: i for i, name in enumerate(pool.names)}
        ids = {im["path"]: im["id"] for im in project.images()}
        self._image_id = np.array([ids[name] for name in pool.names], dtype=np.int64)
        self._position = {int(image_id): i for i, image_id in enumerate(self._image_id)}

    @classmethod
    def open(cls, folder: str | Path, pool: SegmentationSplit, pixels: list, offsets: np.ndarray,
             class_names: Sequence[str], config, run: dict, *, resume: bool,
             finished: Sequence[Sequence[int]] = ()) -> "GroundTruthAnnotator":
        """The run's project in ``folder``: created, reopened on resume, or filled in for an older results folder.

        Parameters
        ----------
        folder : path
            The run's results folder.
        pool, pixels, offsets
            As in the class.
        class_names : sequence of str
        config : ExperimentConfig
        run : dict
            Identity of the run's data (pool and test images); a resumed
            project must have been made on the same.
        resume : bool
            False starts afresh: a project left by an earlier run in
            ``folder`` is replaced (never one that ``skal-seg init`` made).
        finished : sequence of sequence of int
            Candidate rows labeled in each round the run has finished
            (``state.json``). A results folder written before runs kept a
            project has none: its rounds are recorded and answered now.

        Returns
        -------
        GroundTruthAnnotator

        Raises
        ------
        ValueError
            ``folder`` holds a project that no run made, one made with other
            settings, classes or data, or one whose queries differ from the
            rows ``state.json`` lists.
        """
        folder = Path(folder)
        saved = None
        if ProjectStore(folder).exists():
            project = LabelingProject(folder)
            saved = project.settings
            if "benchmark" not in saved:
                raise ValueError(f"{folder} holds a labeling project that no benchmark run made; "
                                 f"write the run to another folder")
        if saved is not None and resume:
            differences = settings_differences(saved["config"], config.to_dict())
            kept = [c["name"] for c in project.classes()]
            if kept != list(class_names):
                differences.append(f"classes {kept} (saved) vs {list(class_names)} (now)")
            if saved["benchmark"] != json.loads(json.dumps(run)):
                differences.append("the pool/test images")
            if differences:
                raise ValueError(f"cannot resume {folder}: its {DB_NAME} was made with other settings: "
                                 f"{'; '.join(differences)}; rerun with those or write to another folder")
        else:  # a fresh run replaces the record of an earlier one, as it replaces state.json
            project = LabelingProject.for_pool(folder, pool, class_names, config, run, replace=saved is not None)
        project.store.hold()  # two transactions per round: see ProjectStore.hold
        annotator = cls(project, pool, pixels, offsets)
        n_rounds = annotator._n_rounds()
        for r, rows in enumerate(finished):
            if r < n_rounds:
                if annotator._recorded(r) != [int(i) for i in rows]:
                    raise ValueError(f"cannot resume {folder}: round {r} of {DB_NAME} queried other pixels than "
                                     f"state.json lists; delete the folder and run again")
            else:  # an older results folder: record what it labeled
                annotator.ask(r, rows, strategy=config.strategy, budget=len(rows), seconds=0.0)
        annotator.answer()  # a run stopped between asking and answering
        return annotator

    def _rows(self, image_id: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Candidate rows of project pixels (ValueError for a pixel that is no candidate)."""
        g = np.array([self._position[int(i)] for i in image_id], dtype=np.int64)
        flat = np.asarray(y, dtype=np.int64) * self._width + np.asarray(x, dtype=np.int64)
        rows = np.empty(len(g), dtype=np.int64)
        for n, (image, pixel) in enumerate(zip(g, flat)):
            j = np.searchsorted(self.pixels[image], pixel)
            if j >= len(self.pixels[image]) or self.pixels[image][j] != pixel:
                raise ValueError(f"{self.pool.names[image]} (y={pixel // self._width}, x={pixel % self._width}) "
                                 f"is no candidate pixel of the run")
            rows[n] = self.offsets[image] + j
        return rows

    def _n_rounds(self) -> int:
        return self.project.store.scalar("SELECT COUNT(*) FROM rounds")

    def _recorded(self, r: int) -> list[int]:
        """Candidate rows queried in recorded round ``r``, in asking order."""
        found = self.project.store.rows("SELECT image_id, y, x FROM queries WHERE round_id = ? ORDER BY rank", (r,))
        return self._rows(*(np.array([q[k] for q in found], dtype=np.int64) for k in ("image_id", "y", "x"))).tolist()

    def ask(self, r: int, rows: Sequence[int], strategy: str, budget: int, seconds: float) -> None:
        """Record round ``r``'s picks as the project's queries, then answer them from the ground truth.

        A round already recorded (a run resumed after it was asked) must have
        asked the same pixels; it is not written again.

        Parameters
        ----------
        r : int
            The round (the project's rounds are numbered alike).
        rows : sequence of int
            Candidate rows picked, in picking order.
        strategy, budget, seconds
            Recorded with the round (see :meth:`LabelingProject.record_round`), with
            the answers carrying a class so far as ``trained_on`` (the runner's
            classifier is trained on all of them).

        Raises
        ------
        RuntimeError
            The recorded round ``r`` asked other pixels, or rounds before it are missing.
        """
        rows = np.asarray(rows, dtype=np.int64)
        n_rounds = self._n_rounds()
        if r < n_rounds:
            if self._recorded(r) != rows.tolist():
                raise RuntimeError(f"round {r} picked other pixels than {DB_NAME} recorded for it")
        elif r != n_rounds:
            raise RuntimeError(f"round {r} cannot be recorded after {n_rounds} rounds")
        else:
            g = np.searchsorted(self.offsets, rows, side="right") - 1
            flat = np.array([self.pixels[i][row - self.offsets[i]] for i, row in zip(g, rows)], dtype=np.int64)
            picks = [(int(self._image_id[i]), int(f // self._width), int(f % self._width), None)
                     for i, f in zip(g, flat)]
            trained_on = int(np.sum(self.project.labels()[3] != IGNORE_INDEX))
            self.project.record_round(picks, strategy, budget, trained_on, seconds)
        self.answer()

    def close(self) -> None:
        """Close the connection the annotator keeps open (see :meth:`ProjectStore.hold`)."""
        self.project.store.release()

    def answer(self) -> int:
        """Answer every pending query from the pool's label maps (one import); returns how many."""
        return answer_from_label_maps(self.project, lambda name: self.pool.labels[self._index[name]], self.SOURCE)

    def revealed(self, n_rows: int) -> np.ndarray:
        """The label of every candidate row as answered so far.

        Parameters
        ----------
        n_rows : int
            Candidate rows of the pool.

        Returns
        -------
        ndarray of shape (n_rows,), uint8
            The answer's class id, :data:`~skal_seg.data.IGNORE_INDEX` for
            a void answer and for rows not answered (the classifier is only
            ever given answered rows).
        """
        image_id, y, x, label = self.project.labels()
        known = np.full(n_rows, IGNORE_INDEX, dtype=np.uint8)
        known[self._rows(image_id, y, x)] = label
        return known
