"""A labeling project: ask a person which pixels to label, remember every answer, predict masks.

The verbs, in the order a session uses them::

    project = LabelingProject.init("myproject", images="photos/", classes=["sky", "road", "car"])
    project.query(budget=40)          # features (cached), train on the answers so far, two-stage query
    project.answer(query_id, "road")  # or the web page (skal-seg label), or import_answers(csv / Label Studio)
    project.status()
    project.predict("new/", "masks/") # full-resolution PNG masks and overlays

Images keep their own size and format; features are computed at a square
working size (``working_size``, default 128, the embedded model's input), and
queries, answers and masks are in original-resolution pixels (the mapping:
:mod:`skal_seg.labeling.pool`).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

from skal_seg._memory import check_images_fit
from skal_seg.data import IGNORE_INDEX, SegmentationSplit
from skal_seg.datasets import load_evaluation_splits
from skal_seg.engine.settings import STRATEGIES, ExperimentConfig
from skal_seg.image_io import read_image, read_roi
from skal_seg.labeling import formats
from skal_seg.labeling.contents import (
    class_colour, find_images, image_records, parse_classes, prediction_paths, roi_files,
)
from skal_seg.labeling.importing import (
    ImportReport, ImportValidationError, check_against_record, check_rows, class_id_of,
)
from skal_seg.labeling.store import (
    VOID, Answer, ProjectStore, RecordConflictError, UnknownRecordError, now, pause_point,
)
from skal_seg.metrics import iou_per_class, mean_iou

if TYPE_CHECKING:
    from skal_seg.labeling.pool import ProjectPool


def _given_id(value, what: str) -> int:
    """An id a caller gave, as an int: integers only (``True``, ``2.7``, ``"2"`` raise TypeError)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _storable(value: int) -> bool:
    """Whether an int fits SQLite's 64-bit INTEGER (larger ones name no row; binding them overflows)."""
    return -(2**63) <= value < 2**63


def _create(store: ProjectStore, images: list[tuple], names: list[str], settings: dict,
            replace: bool = False) -> None:
    """Write a new project: tables, images ``(path, sha256, width, height)``, classes, settings, in one transaction.

    Tables and contents at once: an interrupted creation leaves no project
    (or, with ``replace``, the one it was replacing, whose rows it deletes).
    """
    with store.transaction() as con:
        store.create_tables(con)
        if replace:  # children first (foreign keys)
            for table in ("answers", "queries", "rounds", "images", "classes", "settings"):
                con.execute(f"DELETE FROM {table}")
        stamp = now()
        con.executemany("INSERT INTO images (path, sha256, width, height, added_at) VALUES (?, ?, ?, ?, ?)",
                        [(*r, stamp) for r in images])
        con.executemany("INSERT INTO classes (id, name, colour) VALUES (?, ?, ?)",
                        [(i, n, class_colour(i)) for i, n in enumerate(names)])
        for key, value in {**settings, "created_at": stamp}.items():
            con.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))


#: The strategy of a new project's queries: the one the benchmarks support (docs/labeling.md, "Which strategy").
DEFAULT_STRATEGY = "uherding"


class LabelingProject:
    """A folder holding a labeling session: its SQLite record and a feature cache.

    Open an existing project with ``LabelingProject(folder)``; create one
    with :meth:`init`.

    Parameters
    ----------
    folder : path
        The project folder (holding ``project.sqlite``).
    progress : bool, default=False
        Progress bars while featurizing and training.
    executor : RayExecutor or None, default=None
        Runs the featurizing and the per-image herding of :meth:`query` on
        Ray workers (:class:`skal_seg.distributed.RayExecutor`); the same
        queries as in one process.

    Raises
    ------
    FileNotFoundError
        ``folder`` holds no project.
    """

    def __init__(self, folder: str | Path, progress: bool = False, executor=None):
        self.folder = Path(folder)
        self.progress = progress
        self.executor = executor
        self.store = ProjectStore(self.folder)
        if not self.store.exists():
            raise FileNotFoundError(f"{self.folder} is not a labeling project (no {self.store.path.name}); "
                                    f"create one with 'skal-seg init {self.folder} --images DIR --classes ...'")
        self._pool_cache: "ProjectPool | None" = None

    # ------------------------------------------------------------------ creation

    @classmethod
    def init(
        cls,
        folder: str | Path,
        images: str | Path,
        classes,
        *,
        exclude: Sequence[str] = (),
        working_size: int = 128,
        settings: dict | None = None,
        progress: bool = False,
        roi: str | None = None,
        data: str | Path | None = None,
    ) -> "LabelingProject":
        """Create a project over the images in a folder, or the images a file pattern names.

        Parameters
        ----------
        folder : path
            New project folder (created; must not hold a project yet).
        images : path or str
            Folder of images (any layout, any format PIL reads), one image
            file, or a file pattern with ``{id}`` (``"training/images/{id}_training.tif"``,
            see :func:`~skal_seg.file_patterns.match_pattern`), relative to ``data``.
        classes : str, path or sequence of str
            Class names in id order: a list, a comma-separated string, or a
            text file with one name per line.
        exclude : sequence of str, default=()
            Glob patterns of files to leave out (see :func:`find_images`).
        working_size : int, default=128
            Images are resized to ``working_size`` squared for features.
        settings : dict, optional
            :class:`~skal_seg.engine.settings.ExperimentConfig` fields to change
            (``candidates_per_image``, ``local_budget``, ``keep_global``,
            ``n_draws``, ``seed``, ``featurizer``, ``classifier``, ...).
        progress : bool, default=False
        roi : str, optional
            With an ``images`` pattern, that of the regions of interest (see
            :func:`~skal_seg.labeling.contents.image_records`): pixels outside
            are never queried, and :meth:`predict` gives them no class.
        data : path, optional
            What ``images`` and ``roi`` are relative to (default: the current folder).

        Returns
        -------
        LabelingProject

        Raises
        ------
        FileExistsError
            ``folder`` already holds a project.
        FileNotFoundError
            The image folder, or a class list file named in ``classes``, does not exist.
        ValueError
            No images, an unreadable image, bad classes or bad settings, bad
            patterns or regions of interest (see :func:`~skal_seg.labeling.contents.image_records`).
        """
        store = ProjectStore(folder)
        if store.exists():
            raise FileExistsError(f"{folder} already holds a labeling project")
        names = parse_classes(classes)
        if isinstance(working_size, bool) or not isinstance(working_size, int) or working_size < 8:
            raise ValueError(f"working_size must be an integer >= 8, got {working_size!r}")
        config = ExperimentConfig(**{"strategy": DEFAULT_STRATEGY, **(settings or {})})
        config.validate()
        if config.candidates_per_image > working_size**2:
            raise ValueError(f"candidates_per_image={config.candidates_per_image} exceeds the "
                             f"{working_size ** 2} pixels of the {working_size}x{working_size} working size")
        if config.filter_bank:  # validate() accepted it, so the features include the filter bank
            from skal_seg.filter_bank import FilterBankFeaturizer  # scipy: only when a bank is configured

            FilterBankFeaturizer(**config.filter_bank).fit().check_image_size(working_size, working_size)
        records, roi_paths, base = image_records(images, roi, exclude, Path(data or "."))
        check_images_fit(len(records), working_size, working_size, "project")  # what each query reads
        _create(store, records, names, {"images_root": str(base), "working_size": working_size,
                                        "config": config.to_dict(), **({"rois": roi_paths} if roi_paths else {})})
        return cls(folder, progress=progress)

    @classmethod
    def for_pool(cls, folder: str | Path, pool: SegmentationSplit, classes, config, run: dict,
                 replace: bool = False) -> "LabelingProject":
        """Create the project of a benchmark run: its images are a pool held in memory, at the working size.

        :func:`~skal_seg.benchmark.runner.run_experiment` keeps its queries and the
        ground truth's answers here (see
        :class:`~skal_seg.benchmark.simulate.GroundTruthAnnotator`). Images are
        recorded by name, content hash (of the pixel array) and size; there
        are no image files, so :meth:`query`, :meth:`predict` and the web
        page are not available, while the record (:meth:`queries`,
        :meth:`answers`, :meth:`status`, :meth:`export`) is.

        Parameters
        ----------
        folder : path
            New project folder (the run's results folder).
        pool : SegmentationSplit
        classes : sequence of str
            Class names in id order.
        config : ExperimentConfig
            The run's settings (recorded, not checked here).
        run : dict
            JSON-able identity of the run (recorded as the ``benchmark``
            setting; a project without it was not made by a run).
        replace : bool, default=False
            Replace the project in ``folder`` (an earlier run's; in one
            transaction: a crash leaves the old project or the new one).

        Returns
        -------
        LabelingProject

        Raises
        ------
        FileExistsError
            ``folder`` already holds a project (and ``replace`` is False).
        ValueError
            Bad class names (as in :meth:`init`).
        """
        store = ProjectStore(folder)
        if store.exists() and not replace:
            raise FileExistsError(f"{folder} already holds a labeling project")
        h, w = pool.images.shape[1:3]
        records = [(name, hashlib.sha256(np.ascontiguousarray(image)).hexdigest(), w, h)
                   for name, image in zip(pool.names, pool.images)]
        _create(store, records, parse_classes(classes),
                {"images_root": None, "working_size": None, "config": config.to_dict(), "benchmark": run}, replace)
        return cls(folder)

    # ------------------------------------------------------------------ reading the record

    @property
    def settings(self) -> dict:
        """The project's settings (``images_root``, ``working_size``, ``config``, ...)."""
        return self.store.settings()

    def config(self):
        """The settings as an :class:`~skal_seg.engine.settings.ExperimentConfig` (its ``strategy``: the queries' default)."""
        return ExperimentConfig(**self.settings["config"])

    def classes(self) -> list[dict]:
        """Classes in id order: ``{"id", "name", "colour"}``."""
        return [dict(r) for r in self.store.rows("SELECT id, name, colour FROM classes ORDER BY id")]

    def images(self) -> list[dict]:
        """Images in id order: ``{"id", "path", "sha256", "width", "height"}`` (``path`` relative)."""
        return [dict(r) for r in self.store.rows("SELECT id, path, sha256, width, height FROM images ORDER BY id")]

    def image_path(self, image: dict) -> Path:
        """Absolute path of an image record.

        Raises
        ------
        ValueError
            A benchmark run's project (:meth:`for_pool`), whose images are no files.
        """
        root = self.settings["images_root"]
        if root is None:
            raise ValueError(f"{self.folder} is the record of a benchmark run (skal-seg run): its images were held "
                             f"in memory, not files; create a project over image files with 'skal-seg init'")
        return Path(root) / image["path"]

    def queries(self, pending_only: bool = False) -> list[dict]:
        """Queries in asking order, with their answer if any.

        Parameters
        ----------
        pending_only : bool, default=False
            Only the queries not answered yet.

        Returns
        -------
        list of dict
            ``id, image_id, path, width, height, y, x, round_id, strategy,
            score, answer_id, label`` (``label`` None when pending, ``"void"``
            for a void answer).
        """
        sql = """SELECT q.id, q.image_id, i.path, i.width, i.height, q.y, q.x, q.round_id, q.strategy, q.score,
                        a.id AS answer_id, CASE WHEN a.id IS NULL THEN NULL ELSE COALESCE(c.name, ?) END AS label
                 FROM queries q JOIN images i ON i.id = q.image_id
                 LEFT JOIN answers a ON a.query_id = q.id LEFT JOIN classes c ON c.id = a.class_id"""
        if pending_only:
            sql += " WHERE a.id IS NULL"
        return [dict(r) for r in self.store.rows(sql + " ORDER BY q.round_id, q.rank", (VOID,))]

    def answers(self) -> list[dict]:
        """Every answer: ``id, image_id, path, y, x, query_id, label, source, answered_at``."""
        sql = """SELECT a.id, a.image_id, i.path, a.y, a.x, a.query_id, COALESCE(c.name, ?) AS label,
                        a.source, a.answered_at
                 FROM answers a JOIN images i ON i.id = a.image_id LEFT JOIN classes c ON c.id = a.class_id
                 ORDER BY a.id"""
        return [dict(r) for r in self.store.rows(sql, (VOID,))]

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every answer as arrays, in answering order: what a classifier trains on.

        Returns
        -------
        image_id, y, x : ndarray of int64
            Where (original-resolution pixel).
        label : ndarray of uint8
            Class id, :data:`~skal_seg.data.IGNORE_INDEX` for a void answer.
        """
        rows = self.store.rows("SELECT image_id, y, x, class_id FROM answers ORDER BY id")
        where = np.array([(r["image_id"], r["y"], r["x"]) for r in rows], dtype=np.int64).reshape(-1, 3)
        label = np.array([IGNORE_INDEX if r["class_id"] is None else r["class_id"] for r in rows], dtype=np.uint8)
        return where[:, 0], where[:, 1], where[:, 2], label

    def status(self) -> dict:
        """Where the session stands.

        Returns
        -------
        dict
            ``images``, ``rounds`` (list of ``{id, created_at, budget,
            trained_on, seconds}``), ``queries``, ``pending``, ``answers``,
            ``extra`` (answers to pixels never queried), ``per_class``
            (answers per class name, ``"void"`` included), ``cache_bytes``
            (the feature cache in ``folder/cache``: recomputable, safe to delete).
        """
        per_class = {c["name"]: 0 for c in self.classes()}
        per_class[VOID] = 0
        for r in self.store.rows("""SELECT COALESCE(c.name, ?) AS label, COUNT(*) AS n FROM answers a
                                    LEFT JOIN classes c ON c.id = a.class_id GROUP BY label""", (VOID,)):
            per_class[r["label"]] = r["n"]
        return {
            "images": self.store.scalar("SELECT COUNT(*) FROM images"),
            "rounds": [dict(r) for r in self.store.rows(
                "SELECT id, created_at, strategy, budget, trained_on, seconds FROM rounds ORDER BY id")],
            "queries": self.store.scalar("SELECT COUNT(*) FROM queries"),
            "pending": len(self.queries(pending_only=True)),
            "answers": self.store.scalar("SELECT COUNT(*) FROM answers"),
            "extra": self.store.scalar("SELECT COUNT(*) FROM answers WHERE query_id IS NULL"),
            "per_class": per_class,
            "cache_bytes": sum(f.stat().st_size for f in (self.folder / "cache").rglob("*") if f.is_file()),
        }

    # ------------------------------------------------------------------ answering

    def _class_id(self, label: str) -> int | None:
        """Class id of a label name (None for void); ValueError for an unknown name, TypeError for no text."""
        return class_id_of(label, {c["name"]: c["id"] for c in self.classes()})

    def answer(self, query_id: int, label: str, source: str = "api") -> int:
        """Answer one query (saved at once, in its own transaction).

        Parameters
        ----------
        query_id : int
        label : str
            A class name, or ``"void"`` for void / unsure.
        source : str, default="api"

        Returns
        -------
        int
            The answer's id; ids are never reused, not even after an undo.

        Raises
        ------
        TypeError
            ``query_id`` is no integer (``True``, ``2.0`` and ``"2"`` are
            refused, not read as ids), or ``label`` is no text.
        UnknownRecordError
            No query with that id (a ``ValueError``).
        RecordConflictError
            The query is already answered (undo that answer first; a ``ValueError``).
        ValueError
            An unknown class.
        """
        query_id = _given_id(query_id, "query_id")
        class_id = self._class_id(label)
        with self.store.transaction() as con:
            q = con.execute("SELECT image_id, y, x FROM queries WHERE id = ?", (query_id,)).fetchone() \
                if _storable(query_id) else None
            if q is None:
                raise UnknownRecordError(f"no query with id {query_id}")
            if con.execute("SELECT 1 FROM answers WHERE query_id = ?", (query_id,)).fetchone():
                raise RecordConflictError(f"query {query_id} is already answered; undo that answer first")
            cur = con.execute(
                "INSERT INTO answers (image_id, y, x, query_id, class_id, source, answered_at) VALUES (?,?,?,?,?,?,?)",
                (q["image_id"], q["y"], q["x"], query_id, class_id, source, now()))
            return int(cur.lastrowid)

    def undo(self, answer_id: int, *, query_id: int | None) -> int | None:
        """Delete one answer (the person takes it back); its query is pending again.

        The call names both the answer and the query it answers, and an
        answer that does not answer that query is left alone: an undo sent
        twice, or from a page that has not seen a newer answer, changes
        nothing. (Answer ids are never reused, so an id names one answer
        for ever.)

        Parameters
        ----------
        answer_id : int
            As :meth:`answer` returned it, or :meth:`queries` lists it (``answer_id``).
        query_id : int or None
            The query that answer answers; None for an extra answer (a
            pixel nobody asked for, see :meth:`import_answers`).

        Returns
        -------
        int or None
            ``query_id``.

        Raises
        ------
        TypeError
            An id that is no integer (``query_id`` may be None).
        UnknownRecordError
            No answer with that id (undone already; a ``ValueError``).
        RecordConflictError
            The answer answers another query (a ``ValueError``); nothing is deleted.
        """
        answer_id = _given_id(answer_id, "answer_id")
        if query_id is not None:
            query_id = _given_id(query_id, "query_id")
        with self.store.transaction() as con:
            row = con.execute("SELECT query_id FROM answers WHERE id = ?", (answer_id,)).fetchone() \
                if _storable(answer_id) else None
            if row is None:
                raise UnknownRecordError(f"no answer with id {answer_id} (undone already?)")
            if row["query_id"] != query_id:
                answers = "an extra pixel" if row["query_id"] is None else f"query {row['query_id']}"
                named = "an extra pixel" if query_id is None else f"query {query_id}"
                raise RecordConflictError(f"answer {answer_id} answers {answers}, not {named}; nothing undone")
            con.execute("DELETE FROM answers WHERE id = ?", (answer_id,))
            return query_id

    def import_answers(self, path: str | Path, format: str = "auto") -> ImportReport:
        """Import answers from a CSV (``image,y,x,label``) or a Label Studio JSON export.

        Every row is validated before anything is written, and the rows are
        written in one transaction: an import is complete or absent.
        Label Studio's names of uploaded images
        (``/data/upload/3/8f3a2b1c-NAME.png``) match the project's ``NAME.png``.

        Parameters
        ----------
        path : path
        format : {"auto", "csv", "labelstudio"}, default="auto"
            ``"auto"``: ``.json`` files are Label Studio exports, others CSV.

        Returns
        -------
        ImportReport

        Raises
        ------
        ImportValidationError
            Unknown images or classes, pixels outside their image, malformed
            rows, or a pixel given two different classes (in the file, or
            differing from a stored answer); the message lists every bad row.
        FileNotFoundError
            ``path`` does not exist.
        ValueError
            ``path`` is a folder, is not UTF-8 text, or is no CSV / JSON
            export at all (the message names the file and the line).
        """
        path = Path(path)
        if format == "auto":
            format = "labelstudio" if path.suffix.lower() == ".json" else "csv"
        if format not in ("csv", "labelstudio"):
            raise ValueError(f"format must be 'auto', 'csv' or 'labelstudio', got {format!r}")
        rows, problems = formats.read_csv(path) if format == "csv" else formats.read_labelstudio(path)
        return self.import_rows(rows, f"{format}:{path.name}", problems=problems, where=str(path))

    def import_rows(self, rows: Sequence[Answer], source: str, *, problems: Sequence[str] = (),
                    where: str | None = None) -> ImportReport:
        """Validate answers and write them in one transaction: the path every import takes.

        Files (:meth:`import_answers`) and the simulated annotator
        (:mod:`~skal_seg.benchmark.simulate`) come through here. The rows are
        checked against the stored answers inside the write transaction, so
        an answer given meanwhile (the web page) is seen: a different class
        for the same pixel is reported like any other conflict.

        Parameters
        ----------
        rows : sequence of Answer
        source : str
            Recorded with each answer (``"csv:<file>"``, ``"ground truth"``, ...).
        problems : sequence of str, default=()
            Problems the reader found already (reported with the others).
        where : str, optional
            Names the origin in the error message (default: ``source``).

        Returns
        -------
        ImportReport

        Raises
        ------
        ImportValidationError
            As :meth:`import_answers`; nothing is written.
        """
        where = source if where is None else where
        images = self.images()  # images and classes never change after init: read before the transaction
        problems = list(problems)
        report = ImportReport()
        new = check_rows(rows, images, {c["name"]: c["id"] for c in self.classes()}, report, problems)
        with self.store.transaction() as con:
            # Against the answers and queries as they are under the write lock: none can land before the write.
            new = check_against_record(new, con, {im["id"]: im["path"] for im in images}, report, problems)
            if problems:
                raise ImportValidationError(where, problems)
            stamp = now()
            items = [(k[0], k[1], k[2], query_id, class_id, source, stamp)
                     for k, (class_id, _, query_id) in new.items()]
            half = len(items) // 2
            sql = "INSERT INTO answers (image_id, y, x, query_id, class_id, source, answered_at) VALUES (?,?,?,?,?,?,?)"
            con.executemany(sql, items[:half])
            pause_point("import-commit")  # tests kill -9 here: half the rows written, none committed
            con.executemany(sql, items[half:])
        report.added = len(items)
        return report

    def export(self, out: str | Path, format: str = "csv", pending_only: bool = True,
               image_prefix: str = "") -> list[Path]:
        """Write the queries for another tool.

        Parameters
        ----------
        out : path
            Output folder (``queries.csv``, or ``tasks.json`` + ``label_config.xml``).
        format : {"csv", "labelstudio"}, default="csv"
        pending_only : bool, default=True
            False also writes answered queries, with their labels.
        image_prefix : str, default=""
            Label Studio only: prefix of ``data.image`` (see
            :func:`~skal_seg.labeling.formats.write_labelstudio`).

        Returns
        -------
        list of Path
            The files written.

        Raises
        ------
        ValueError
            An unknown format.
        """
        queries = self.queries(pending_only=pending_only)
        if format == "csv":
            return [formats.write_csv(queries, Path(out) / "queries.csv")]
        if format == "labelstudio":
            return formats.write_labelstudio(queries, [c["name"] for c in self.classes()], out, image_prefix)
        raise ValueError(f"format must be 'csv' or 'labelstudio', got {format!r}")

    # ------------------------------------------------------------------ features and the model

    def _pool(self) -> "ProjectPool":
        """The images as the engine's pool (built once per object; features cached in ``folder/cache``)."""
        if self._pool_cache is None:
            # Deferred: the pool imports the engine (torch, diffusers), which status, import, export and the
            # page's answers never need; only query, model, evaluate and predict pay for it.
            from skal_seg.labeling.pool import ProjectPool

            rows = self.images()
            self._pool_cache = ProjectPool.build(self.config(), self.settings["working_size"], rows,
                                                 [self.image_path(r) for r in rows], self.folder / "cache",
                                                 self.progress, self.executor, rois=roi_files(self.settings, rows))
        return self._pool_cache

    def _training_set(self, pool: "ProjectPool") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features and class ids of every answer (void = IGNORE_INDEX), and the pool rows already asked.

        Returns
        -------
        X : ndarray (n_answers, D) float32
        y : ndarray (n_answers,) uint8
        taken : ndarray of int64
            Candidate rows whose original pixel has been queried or answered.
        """
        image_id, y, x, label = self.labels()
        asked = {(r["image_id"], r["y"], r["x"]) for r in self.store.rows("SELECT image_id, y, x FROM queries")}
        taken = pool.taken_rows(set(zip(image_id, y, x)), asked)
        return pool.answer_features(image_id, y, x), label, taken

    def query(self, budget: int, strategy: str | None = None) -> list[dict]:
        """One round: features (cached), train on the answers so far, query with a strategy.

        The strategies are the benchmark runner's
        (:data:`~skal_seg.engine.settings.STRATEGIES`), with the runner's
        round 0: no answer with a class yet, the herding strategies use stage 1
        (MaxHerding), the others pick at random. The round records the
        strategy that picked. The new queries are written in one transaction
        at the end: an interrupted query leaves nothing behind and can be re-run.

        Parameters
        ----------
        budget : int
            Pixels to ask for (positive).
        strategy : str, optional
            This round's strategy (default: the project's, ``settings["config"]["strategy"]``;
            ``uherding`` for projects made since it led the benchmarks, see docs/labeling.md).

        Returns
        -------
        list of dict
            The new queries (as :meth:`queries` lists them).

        Raises
        ------
        ValueError
            A budget below 1 or larger than the candidate pixels not asked yet, an
            unknown strategy, or one the project's features cannot serve.
        """
        if strategy is not None and strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"budget must be a positive integer, got {budget!r}")
        t0 = time.perf_counter()
        pool = self._pool()
        X_train, y_train, taken = self._training_set(pool)
        n_rounds = self.store.scalar("SELECT COUNT(*) FROM rounds")
        classifier = pool.classifier(X_train, y_train, n_rounds)
        left = len(pool.feats.X) - len(taken)
        if budget > left:
            raise ValueError(f"budget {budget} exceeds the {left} candidate pixels not asked yet "
                             f"(raise candidates_per_image in a new project, or ask fewer)")
        labels = pool.row_labels(*self.labels())
        picks, picked_by = pool.query(classifier, taken, budget, self.progress, self.executor, strategy=strategy,
                                      labels=labels, round_id=n_rounds)
        round_id = self.record_round(picks, picked_by, budget, int(np.sum(y_train != IGNORE_INDEX)),
                                     time.perf_counter() - t0)
        return [q for q in self.queries() if q["round_id"] == round_id]

    def record_round(self, picks: Sequence[tuple], strategy: str, budget: int, trained_on: int,
                     seconds: float) -> int:
        """Write a new round and its queries in one transaction (all of them, or none after a crash).

        :meth:`query` and the benchmark runner (through
        :class:`~skal_seg.benchmark.simulate.GroundTruthAnnotator`) record
        their picks here.

        Parameters
        ----------
        picks : sequence of (image_id, y, x, score)
            Distinct pixels in asking order, original-resolution coordinates;
            ``score`` None where the strategy gives none.
        strategy : str
        budget : int
            Pixels asked for.
        trained_on : int
            Answers with a class that the picking classifier saw.
        seconds : float
            Time the round took.

        Returns
        -------
        int
            The round's id (rounds are numbered 0, 1, ...).

        Raises
        ------
        sqlite3.IntegrityError
            A pixel queried before (nothing is written).
        """
        with self.store.transaction() as con:
            round_id = con.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
            con.execute("INSERT INTO rounds (id, created_at, strategy, budget, trained_on, seconds) VALUES (?,?,?,?,?,?)",
                        (round_id, now(), strategy, budget, trained_on, seconds))
            half = len(picks) // 2
            sql = "INSERT INTO queries (image_id, y, x, round_id, strategy, score, rank) VALUES (?,?,?,?,?,?,?)"
            rows = [(im, y, x, round_id, strategy, score, rank) for rank, (im, y, x, score) in enumerate(picks)]
            con.executemany(sql, rows[:half])
            pause_point("query-commit")  # tests kill -9 here: a round half-written, not committed
            con.executemany(sql, rows[half:])
        return round_id

    # ------------------------------------------------------------------ prediction

    def model(self):
        """The classifier trained on every answer so far, or None when no answer carries a class."""
        pool = self._pool()
        X, y, _ = self._training_set(pool)
        return pool.classifier(X, y, self.store.scalar("SELECT COUNT(*) FROM rounds"))

    def evaluate(self, split_dir: str | Path, *, images: str | None = None, labels: str | None = None,
                 roi: str | None = None, label_map=None, ignore: Sequence[int | str] | None = None) -> dict:
        """Quality of the classifier trained on every answer, on labeled images at their own size.

        Parameters
        ----------
        split_dir : path
            A folder of ``NAME.EXT`` + ``NAME_label.png`` pairs whose label
            values are the project's class ids (255 = ignore); or, with
            patterns, the folder they are relative to.
        images, labels, roi, label_map, ignore : optional
            Patterns relative to ``split_dir``, what the stored label values
            are (naming the project's classes) and which mean "no label":
            see :func:`~skal_seg.datasets.load_evaluation_splits`.

        Returns
        -------
        dict
            ``{"miou": float, "iou": list of float or None per class}``.

        Raises
        ------
        ValueError
            No answer with a class yet, or a bad split (see
            :func:`~skal_seg.datasets.load_evaluation_splits`).
        """
        classes = [c["name"] for c in self.classes()]
        # the folder first: a bad one fails before the head is trained, as predict checks its names first
        splits = load_evaluation_splits(split_dir, classes, images=images, labels=labels, roi=roi,
                                        label_map=label_map, ignore=ignore)
        clf = self.model()
        if clf is None:
            raise ValueError("no answer with a class yet: nothing to evaluate")
        cm = self._pool().evaluate(clf, splits, len(classes))
        return {"miou": mean_iou(cm), "iou": [None if np.isnan(v) else float(v) for v in iou_per_class(cm)]}

    def predict(self, images: str | Path | None, out: str | Path, exclude: Sequence[str] = (),
                overwrite: bool = False) -> list[Path]:
        """Full-resolution masks and overlays from the classifier trained on every answer.

        Each image is featurized densely at the working size, its class
        probabilities enlarged bilinearly to the image's own size and the
        most probable class taken there (smooth edges, not working-size blocks).
        Every output name is checked before the classifier is trained and
        anything written: predict never replaces an image, never writes two
        masks to one name, and replaces earlier masks only when asked to.
        Pixels outside a project image's region of interest get no class:
        255 in the mask (black), the image as it is in the overlay.

        Parameters
        ----------
        images : path or None
            Folder (any layout) or file of images; None = the project's images.
        out : path
            Output folder: ``<relative path>.png`` (8-bit palette PNG of class
            ids, coloured with the class colours, 255 outside the region of
            interest; the image's extension is replaced) and ``<relative path>_overlay.png``. It must not hold
            the images predicted or the project's images (at any depth).
        exclude : sequence of str, default=()
            Glob patterns of files to skip (see :func:`find_images`).
        overwrite : bool, default=False
            Replace masks and overlays already in ``out`` (an earlier
            prediction); without it, any file to write that exists stops
            the call before anything is written.

        Returns
        -------
        list of Path
            The mask files written.

        Raises
        ------
        ValueError
            No answer with a class yet; no images found; ``out`` holds
            images; two images would write the same file (``x.png`` and
            ``x.jpg`` both give ``x.png``: leave one out with ``exclude``);
            a file to write exists and ``overwrite`` is False.
        """
        rows = self.images()
        if images is None:
            files = [self.image_path(r) for r in rows]  # says so for a benchmark run's project
            root = Path(self.settings["images_root"])
        else:
            root = Path(images)
            files = find_images(root, exclude)
            root = root if root.is_dir() else root.parent
        if not files:
            raise ValueError(f"no image files found in {images}")
        out = Path(out)
        base = self.settings["images_root"]
        project_files = [Path(base) / r["path"] for r in rows] if base is not None else []
        targets = prediction_paths(files, root, out, overwrite, project_files)
        clf = self.model()
        if clf is None:
            raise ValueError("no answer with a class yet: answer some queries before predicting")
        pool = self._pool()
        roi_of = dict(zip((self.image_path(r).resolve() for r in rows), roi_files(self.settings, rows)))
        palette = np.zeros((256, 3), dtype=np.uint8)
        for c in self.classes():
            palette[c["id"]] = [int(c["colour"][k : k + 2], 16) for k in (1, 3, 5)]
        written = []
        for path, (target, overlay_path) in zip(files, targets):
            original = read_image(path)
            h, w = original.shape[:2]
            mask_img = Image.fromarray(pool.predict_labels(clf, original))
            roi = roi_of.get(Path(path).resolve())  # a project image's region of interest; outside: no class
            inside = np.ones((h, w), dtype=bool) if roi is None else read_roi(roi)
            mask_arr = np.where(inside, np.asarray(mask_img), IGNORE_INDEX).astype(np.uint8)
            mask_img = Image.fromarray(mask_arr)
            target.parent.mkdir(parents=True, exist_ok=True)
            mask_img.putpalette(palette.reshape(-1).tolist())  # mode L -> P: values stay the class ids
            mask_img.save(target)
            overlay = np.where(inside[..., None], 0.5 * original + 0.5 * palette[mask_arr], original).astype(np.uint8)
            Image.fromarray(overlay).save(overlay_path)
            written.append(target)
        return written
