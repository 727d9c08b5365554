"""Where a dataset's files are and what its label values mean: patterns, layouts, loading.

A dataset is described by a :class:`DatasetSpec`, built by :func:`dataset_spec`
from the same options the command line takes, or from the folder's
``dataset.json``:

* **file patterns** with an ``{id}`` placeholder, relative to the dataset
  folder, pair each image with its label map (and its region of interest):
  ``images="training/images/{id}_training.tif"``,
  ``labels="training/1st_manual/{id}_manual1.gif"``,
  ``roi="training/mask/{id}_training_mask.gif"`` (:func:`match_files`);
* or a ready-made **layout** (:data:`LAYOUTS`: ``cityscapes``, ``voc``,
  ``pascal-context``, ``ade20k``), which sets the patterns and the label map;
* or, with neither, the package's own layout: ``train/`` and ``test/``
  folders of ``NAME.EXT`` beside ``NAME_label.png``
  (:func:`skal_seg.data.load_split`);
* a **label map** (:class:`~skal_seg.label_map.LabelMap`) saying which
  class each stored value is (``"0:background,255:vessel"``) and which
  values mean "no label";
* the **test split**: patterns of its own, or ``test_fraction``, a seeded
  share of the labeled images held out.

:func:`load_dataset` reads both splits at one working size, checks every
split's label values against the map before anything else is done (see
:meth:`~skal_seg.label_map.LabelSurvey.check`), and returns a
:class:`Dataset`: the pool and test :class:`~skal_seg.data.SegmentationSplit`
(with their regions of interest), the classes, and the lines and warnings
the plan prints.

``dataset.json`` in the dataset folder may hold any option of
:func:`dataset_spec` by its Python name, for example::

    {"images": "training/images/{id}_training.tif",
     "labels": "training/1st_manual/{id}_manual1.gif",
     "roi": "training/mask/{id}_training_mask.gif",
     "test_fraction": 0.25,
     "label_map": {"0": "background", "255": "vessel"}}

Options given to :func:`dataset_spec` (the command line) replace the file's
options of the same group: the files (``layout``, ``scene``, ``images``,
``labels``, ``roi``), the test split (``test_*``), the classes
(``label_map``, ``classes``), and ``ignore``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skal_seg._memory import check_images_fit
from skal_seg.data import (
    CAMVID_CLASSES,
    CLASSES_FILE,
    IGNORE_INDEX,
    SegmentationSplit,
    check_working_size,
    fraction_split,
    read_class_names,
)
from skal_seg.file_patterns import (
    ID_PLACEHOLDER,
    FileSet,
    SplitFiles,
    folder_files,
    match_files,
)
from skal_seg.image_io import image_size, read_image, read_label_values, read_roi
from skal_seg.label_map import LabelMap, LabelSurvey
from skal_seg.layouts import LAYOUTS, scene_ids

__all__ = ["DATASET_FILE", "Dataset", "DatasetSpec", "dataset_files", "dataset_spec", "load_dataset",
           "load_evaluation_splits", "load_files"]

#: Optional file in a dataset folder holding :func:`dataset_spec` options (JSON object).
DATASET_FILE = "dataset.json"


# --------------------------------------------------------------------------- file patterns


# --------------------------------------------------------------------------- ready-made layouts


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to read a dataset: where its files are and what its label values mean.

    Build it with :func:`dataset_spec`.

    Attributes
    ----------
    label_map : LabelMap
    pool : SplitFiles or None, default=None
        None: the folder's ``train/`` (``NAME.EXT`` beside ``NAME_label.png``).
    test : SplitFiles or None, default=None
        None: the folder's ``test/``, or ``test_fraction`` of the pool.
    test_fraction : float or None, default=None
        Share of the labeled pool images held out as the test split
        (seeded, so every run holds out the same images).
    layout : str or None, default=None
        The ready-made layout the files come from, if any.
    scene : str or None, default=None
        Keep only the images of this scene (layouts with a scene list).
    """

    label_map: LabelMap
    pool: SplitFiles | None = None
    test: SplitFiles | None = None
    test_fraction: float | None = None
    layout: str | None = None
    scene: str | None = None

    def describe(self) -> list[str]:
        """Lines saying where the files are, for the plan."""
        def files(f: SplitFiles | None, folder: str) -> str:
            if f is None:
                return f"{folder}/ (NAME.EXT beside NAME_label.png)"
            extra = f" (region of interest {f.roi})" if f.roi else ""
            ids = f", ids listed in {f.ids}" if f.ids else ""
            return f"{f.images} with labels {f.labels}{extra}{ids}"

        head = f"layout {self.layout}" + (f", scene {self.scene}" if self.scene else "") + ": " if self.layout else ""
        test = (f"{self.test_fraction:g} of the labeled images, drawn with a fixed seed" if self.test_fraction
                else files(self.test, "test"))
        return [f"{head}pool {files(self.pool, 'train')}; test {test}"]


_LOCATION = ("layout", "scene", "images", "labels", "roi")
_TEST = ("test_images", "test_labels", "test_roi", "test_fraction")
_CLASSES = ("label_map", "classes")
_KEYS = (*_LOCATION, *_TEST, *_CLASSES, "ignore")


def _dataset_file(root: Path) -> dict:
    path = root / DATASET_FILE
    if not path.is_file():
        return {}
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(options, dict):
        raise ValueError(f"{path}: expected a JSON object of options, got {type(options).__name__}")
    unknown = sorted(set(options) - set(_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown options {', '.join(unknown)}; valid: {', '.join(_KEYS)}")
    return options


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def dataset_spec(
    root: str | Path,
    *,
    layout: str | None = None,
    images: str | None = None,
    labels: str | None = None,
    roi: str | None = None,
    test_images: str | None = None,
    test_labels: str | None = None,
    test_roi: str | None = None,
    test_fraction: float | None = None,
    label_map: str | dict | LabelMap | None = None,
    ignore: Sequence[int | str] | None = None,
    classes: Sequence[str] | None = None,
    scene: str | None = None,
) -> DatasetSpec:
    """The description of a dataset folder, from options (the command line's) and the folder's own files.

    Every option is the command-line flag of the same name (``test_images``
    is ``--test-images``); None means "not given". Options not given are
    taken from ``root/dataset.json`` (see the module docs), by group.

    Parameters
    ----------
    root : path-like
        Dataset folder; patterns and list files are relative to it.
    layout : {"cityscapes", "voc", "pascal-context", "ade20k"}, optional
        A ready-made layout (:data:`LAYOUTS`): its patterns and label map.
        Not together with patterns.
    images, labels, roi : str, optional
        Patterns of the pool's images, label maps and regions of interest
        (see :func:`match_pattern`). ``images`` and ``labels`` go together.
    test_images, test_labels, test_roi : str, optional
        The same for the test split.
    test_fraction : float, optional
        Instead of test patterns: hold out this share (in (0, 1)) of the
        labeled images as the test split.
    label_map : str, dict or LabelMap, optional
        ``"0:background,255:vessel"`` (see :class:`~skal_seg.label_map.LabelMap`).
    ignore : sequence of int or str, optional
        Stored values that mean "no label" (may be empty). Default: those
        of the layout, else 255 unless the map names it.
    classes : sequence of str, optional
        Class names, value ``i`` = class ``i`` (``--classes``); not together
        with ``label_map``.
    scene : str, optional
        Keep only the images of this scene (``ade20k``: ``"bedroom"`` gives
        the paper's ADE-Bed).

    Returns
    -------
    DatasetSpec
        Its label map comes from, in order: ``label_map`` or ``classes``;
        the layout; ``dataset.json``'s; the folder's ``classes.txt``
        (value ``i`` = line ``i``); CamVid's 11 classes.

    Raises
    ------
    ValueError
        Contradicting or incomplete options (named), an unknown layout, a
        bad map, a bad ``dataset.json``, or both ``dataset.json`` classes
        and a ``classes.txt``.
    """
    root = Path(root)
    given = {k: v for k, v in dict(
        layout=layout, images=images, labels=labels, roi=roi, test_images=test_images, test_labels=test_labels,
        test_roi=test_roi, test_fraction=test_fraction, label_map=label_map, ignore=ignore, classes=classes,
        scene=scene).items() if v is not None}
    stored = _dataset_file(root)
    for group in (_LOCATION, _TEST, _CLASSES, ("ignore",)):
        if any(k in given for k in group):
            stored = {k: v for k, v in stored.items() if k not in group}
    opts = {**stored, **given}
    where = {k: (_option(k) if k in given else f"{root / DATASET_FILE} ({k})") for k in opts}

    def conflict(a: str, b: str, why: str) -> ValueError:
        return ValueError(f"{where[a]} and {where[b]} cannot go together: {why}")

    if "label_map" in opts and "classes" in opts:
        raise conflict("label_map", "classes", "the label map names the classes")
    for dependent, needed in (("labels", "images"), ("roi", "images"), ("images", "labels"),
                              ("test_labels", "test_images"), ("test_roi", "test_images"),
                              ("test_images", "test_labels")):
        if dependent in opts and needed not in opts:
            raise ValueError(f"{where[dependent]} needs {_option(needed)} too (every image is paired with its label "
                             f"by {ID_PLACEHOLDER})")
    if "test_fraction" in opts:
        if "test_images" in opts:
            raise conflict("test_fraction", "test_images", "the test split is either held out or given")
        fraction = opts["test_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"{where['test_fraction']} must be a share in (0, 1), got {fraction!r}")

    pool = test = found_layout = None
    if "layout" in opts:
        name = opts["layout"]
        if name not in LAYOUTS:
            raise ValueError(f"{where['layout']}: unknown layout {name!r}; choose from {', '.join(LAYOUTS)}")
        for k in ("images", "test_images", "test_fraction"):
            if k in opts:
                raise conflict("layout", k, "a layout sets the files and the test split itself")
        found_layout = LAYOUTS[name]
        pool, test = found_layout.pool, found_layout.test
    if "scene" in opts and (found_layout is None or found_layout.scene_file is None):
        with_scenes = ", ".join(n for n, lay in LAYOUTS.items() if lay.scene_file)
        raise ValueError(f"{where['scene']} keeps a scene of a layout with a scene list ({with_scenes})")
    if "images" in opts:
        pool = SplitFiles(opts["images"], opts["labels"], opts.get("roi"))
    if "test_images" in opts:
        test = SplitFiles(opts["test_images"], opts["test_labels"], opts.get("test_roi"))
    if pool is not None and test is None and "test_fraction" not in opts:
        raise ValueError(f"{where['images']} gives the pool; give the test split too: --test-images and "
                         f"--test-labels (and --test-roi), or --test-fraction F to hold out a share of the labeled "
                         f"images")

    folder_classes = root / CLASSES_FILE
    if any(k in stored for k in _CLASSES) and folder_classes.is_file():
        raise ValueError(f"{root / DATASET_FILE} and {folder_classes} both name the classes; keep one")
    if "label_map" in opts:
        value = opts["label_map"]
        the_map = value if isinstance(value, LabelMap) else LabelMap.from_mapping(value, source=where["label_map"])
    elif "classes" in opts:
        the_map = LabelMap.identity(opts["classes"], source=where["classes"])
    elif found_layout is not None:
        the_map = found_layout.label_map
    elif folder_classes.is_file():
        the_map = LabelMap.identity(read_class_names(folder_classes), source=str(folder_classes))
    else:
        the_map = LabelMap.identity(CAMVID_CLASSES, source=f"CamVid's 11 classes (the default: no {CLASSES_FILE} "
                                                           f"in {root})")
    if "ignore" in opts:
        values = opts["ignore"]
        values = [values] if isinstance(values, (int, str)) else values
        the_map = the_map.with_ignore(values, source=where["ignore"])
    return DatasetSpec(the_map, pool, test, opts.get("test_fraction"), opts.get("layout"), opts.get("scene"))


# --------------------------------------------------------------------------- loading


def dataset_files(root: str | Path, spec: DatasetSpec, *, pool_limit: int | None = None,
                  test_limit: int | None = None, split_seed: int = 0) -> tuple[list[FileSet], list[FileSet]]:
    """The files of the pool and of the test split (nothing is decoded).

    Parameters
    ----------
    root : path-like
    spec : DatasetSpec
    pool_limit, test_limit : int, optional
        Keep the first N of each split (by id), after the test split is drawn.
    split_seed : int, default=0
        Seed of the ``test_fraction`` draw (fixed: every run holds out the
        same images).

    Returns
    -------
    pool, test : list of FileSet

    Raises
    ------
    FileNotFoundError, ValueError
        Missing folders or files, unpaired files, a ``test_fraction`` that
        leaves a split empty, an unknown scene.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    layout = LAYOUTS.get(spec.layout) if spec.layout else None
    pool_options, test_options = ("--images", "--labels", "--roi"), ("--test-images", "--test-labels", "--test-roi")
    if layout is not None:
        pool_options = test_options = (f"layout {layout.name}",) * 3
    pool = folder_files(root, "train") if spec.pool is None else match_files(root, spec.pool, "pool", pool_options)
    if spec.test_fraction:
        keep, drawn = fraction_split(len(pool), spec.test_fraction, split_seed, name="test_fraction")
        if len(drawn) == 0 or len(keep) == 0:
            raise ValueError(f"test_fraction {spec.test_fraction:g} of {len(pool)} labeled images leaves "
                             f"{'no test image' if len(drawn) == 0 else 'no pool image'}")
        pool, test = [pool[i] for i in keep], [pool[i] for i in drawn]
    elif spec.test is None:
        test = folder_files(root, "test")
    else:
        test = match_files(root, spec.test, "test", test_options)
    if spec.scene:
        wanted = scene_ids(root, layout, spec.scene)
        pool, test = [f for f in pool if f.id in wanted], [f for f in test if f.id in wanted]
        for name, files in (("pool", pool), ("test", test)):
            if not files:
                raise ValueError(f"{name}: no image of scene {spec.scene!r}")
    if pool_limit is not None:
        pool = pool[:pool_limit]
    if test_limit is not None:
        test = test[:test_limit]
    return pool, test


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def load_files(files: Sequence[FileSet], label_map: LabelMap, size: int | tuple[int, int] | None = 128,
               split: str = "pool", root: str | Path | None = None
               ) -> tuple[SegmentationSplit, LabelSurvey, list[str]]:
    """Read one split, checking its label values against the map before its images are read.

    Label maps are read as stored values (:func:`~skal_seg.image_io.read_label_values`;
    colours only for a colour map), regions of interest with
    :func:`~skal_seg.image_io.read_roi`; both nearest-neighbour resized.
    Labels become class ids through ``label_map``; pixels outside the
    region of interest become :data:`~skal_seg.data.IGNORE_INDEX`.

    Parameters
    ----------
    files : sequence of FileSet
        Each with a label map (and all or none with a region of interest).
    label_map : LabelMap
    size : int, (int, int) or None, default=128
        Working size (see :func:`skal_seg.image_io.working_size`).
    split : str, default="pool"
        Name of the split, for messages.
    root : path-like, optional
        Files are named relative to it in messages.

    Returns
    -------
    split : SegmentationSplit
        ``roi`` set when the files have regions of interest.
    survey : LabelSurvey
        The stored values found, inside the regions of interest.
    warnings : list of str
        From :meth:`~skal_seg.label_map.LabelSurvey.check`.

    Raises
    ------
    ValueError
        No files, a file without a label, sizes that differ, unreadable
        files, or label values the map cannot read (see
        :meth:`~skal_seg.label_map.LabelSurvey.check`).
    """
    labels, rois, survey, warnings = _read_labels(files, label_map, size, split, root)
    return _with_images(files, labels, rois, size), survey, warnings


def _read_labels(files: Sequence[FileSet], label_map: LabelMap, size, split: str, root):
    """Phase 1 of :func:`load_files`: labels and regions read, surveyed and checked (no image decoded)."""
    root = None if root is None else Path(root)
    if not files:
        raise ValueError(f"{split}: no images")
    without = [f.id for f in files if f.label is None]
    if without:
        raise ValueError(f"{split}: images without a label map: {', '.join(without[:5])}")
    if len({f.roi is None for f in files}) > 1:
        raise ValueError(f"{split}: some images have a region of interest and others not")
    companions = [(f.image, {"label": f.label, **({"region of interest": f.roi} if f.roi else {})}) for f in files]
    height, width = check_working_size(companions, size, split)
    check_images_fit(len(files), height, width, split)
    survey = LabelSurvey(split)
    labels, rois = [], []
    for f in files:
        values = read_label_values(f.label, size, colours=label_map.colours)
        roi = None if f.roi is None else read_roi(f.roi, size)
        survey.add(values, roi, _shown(f.label, root))
        label = label_map.apply(values, unmapped=IGNORE_INDEX)  # unmapped values fail in check(), naming files
        if roi is not None:
            label[~roi] = IGNORE_INDEX
            rois.append(roi)
        labels.append(label)
    warnings = survey.check(label_map)
    return np.stack(labels), (np.stack(rois) if rois else None), survey, warnings


def _with_images(files: Sequence[FileSet], labels: np.ndarray, rois: np.ndarray | None, size) -> SegmentationSplit:
    """Phase 2 of :func:`load_files`: the images, once the labels passed."""
    images = np.stack([read_image(f.image, size) for f in files])
    return SegmentationSplit(images, labels, tuple(f.id for f in files), rois)


@dataclass(frozen=True)
class Dataset:
    """A dataset read and checked: pool and test splits, classes, and what the plan should say.

    Attributes
    ----------
    pool : SegmentationSplit
        The labeled images the benchmark queries (before a validation
        split is carved out of it).
    test : SegmentationSplit
    label_map : LabelMap
    surveys : (LabelSurvey, LabelSurvey)
        The label values found in the pool and in the test split.
    warnings : tuple of str
        Classes absent from a split, ignore values covering most pixels.
    spec : DatasetSpec
    """

    pool: SegmentationSplit
    test: SegmentationSplit
    label_map: LabelMap
    surveys: tuple[LabelSurvey, LabelSurvey]
    warnings: tuple[str, ...]
    spec: DatasetSpec

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, class id = position."""
        return self.label_map.classes

    def present_classes(self, split: str = "test") -> tuple[str, ...]:
        """The classes that occur in a split (inside its regions of interest).

        Parameters
        ----------
        split : {"pool", "test"}, default="test"

        Returns
        -------
        tuple of str
            In class-id order. Tables can say that mIoU is taken over these
            (plus any absent class a classifier predicts, at IoU 0).
        """
        survey = {s.split: s for s in self.surveys}[split]
        counts = survey.class_pixels(self.label_map)
        return tuple(c for c, n in zip(self.classes, counts) if n)

    def plan_lines(self) -> list[str]:
        """What the plan prints about the data: files, classes, values per split, then warnings.

        Returns
        -------
        list of str
            Warnings start with ``"warning: "``.
        """
        lines = [*self.spec.describe(), f"classes ({self.label_map.n_classes}): {self.label_map.describe()}"]
        for survey in self.surveys:
            lines += survey.lines(self.label_map)
        return lines + [f"warning: {w}" for w in self.warnings]


def load_dataset(root: str | Path, spec: DatasetSpec | None = None, *, size: int | tuple[int, int] | None = 128,
                 pool_limit: int | None = None, test_limit: int | None = None, split_seed: int = 0) -> Dataset:
    """Read and check a dataset's pool and test splits.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    spec : DatasetSpec, optional
        Default: :func:`dataset_spec` ``(root)`` (the folder's
        ``dataset.json``, or ``train/`` + ``test/``).
    size : int, (int, int) or None, default=128
        Working size of both splits (see :func:`skal_seg.image_io.working_size`).
    pool_limit, test_limit : int, optional
        Read only the first N images of a split (by id).
    split_seed : int, default=0
        Seed of the ``test_fraction`` draw.

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError, ValueError
        Files missing or unpaired, unreadable, of differing sizes, or label
        values the map cannot read: before any image is decoded.
    """
    spec = dataset_spec(root) if spec is None else spec
    pool_files, test_files = dataset_files(root, spec, pool_limit=pool_limit, test_limit=test_limit,
                                           split_seed=split_seed)
    # every split's labels are checked before any image is decoded
    pool_labels, pool_rois, pool_survey, pool_warnings = _read_labels(pool_files, spec.label_map, size, "pool", root)
    test_labels, test_rois, test_survey, test_warnings = _read_labels(test_files, spec.label_map, size, "test", root)
    return Dataset(_with_images(pool_files, pool_labels, pool_rois, size),
                   _with_images(test_files, test_labels, test_rois, size), spec.label_map,
                   (pool_survey, test_survey), (*pool_warnings, *test_warnings), spec)


def load_evaluation_splits(root: str | Path, classes: Sequence[str], *, images: str | None = None,
                           labels: str | None = None, roi: str | None = None,
                           label_map: str | dict | LabelMap | None = None,
                           ignore: Sequence[int | str] | None = None) -> list[SegmentationSplit]:
    """Labeled images to score a classifier of known classes on, at their own size, labels as ids of ``classes``.

    Without patterns ``root`` is itself a folder of ``NAME.EXT`` beside
    ``NAME_label.png`` (values = class ids of ``classes``, 255 = no label,
    however many pixels hold it);
    with ``images`` and ``labels`` (and ``roi``) the files are matched by
    ``{id}`` relative to ``root``, as the pool's are (:func:`match_files`).

    Parameters
    ----------
    root : path-like
    classes : sequence of str
        The classifier's classes, class id = position.
    images, labels, roi : str, optional
        Patterns (``labels`` goes with ``images``).
    label_map : str, dict or LabelMap, optional
        What the stored label values are (``"0:background,255:vessel"``);
        it may name a subset of ``classes``, by name, in any order.
        Default: value ``i`` is ``classes[i]``.
    ignore : sequence of int or str, optional
        Stored values that mean "no label" (default: 255 unless mapped).

    Returns
    -------
    list of SegmentationSplit
        One per image size (a split stacks its images), in order of first
        appearance, images and labels unresized; ``labels`` are ids of
        ``classes`` (or :data:`~skal_seg.data.IGNORE_INDEX`, also outside the
        regions of interest).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or unpaired files, a pattern without its partner, a label
        map naming a class not in ``classes``, or label values the map
        cannot read (:meth:`~skal_seg.label_map.LabelSurvey.check`).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"evaluation folder not found: {root}")
    if (images is None) != (labels is None):
        raise ValueError("the evaluation images and labels patterns go together (each image is paired with its "
                         f"label by {ID_PLACEHOLDER})")
    if roi is not None and images is None:
        raise ValueError("an evaluation region-of-interest pattern needs the images and labels patterns too")
    classes = tuple(classes)
    if label_map is None:  # the package's own convention, where 255 means "no label" without being told
        the_map = LabelMap.identity(classes, source="the classes").with_ignore(
            [IGNORE_INDEX] if ignore is None else ignore)
    else:
        the_map = label_map if isinstance(label_map, LabelMap) else LabelMap.from_mapping(label_map,
                                                                                          source="--label-map")
        if ignore is not None:
            the_map = the_map.with_ignore(ignore, source="--ignore")
    unknown = [c for c in the_map.classes if c not in classes]
    if unknown:
        raise ValueError(f"{the_map.source} names {', '.join(map(repr, unknown))}, not among the classes "
                         f"{', '.join(classes)}")
    if images is None:
        files = folder_files(root.parent, root.name)
    else:
        files = match_files(root, SplitFiles(images, labels, roi), "evaluation",
                            ("--eval-images", "--eval-labels", "--eval-roi"))
    by_size: dict[tuple[int, int], list[FileSet]] = {}
    for f in files:
        by_size.setdefault(image_size(f.image), []).append(f)
    ids = np.full(256, IGNORE_INDEX, dtype=np.uint8)  # the map's class ids -> the classifier's
    ids[: the_map.n_classes] = [classes.index(c) for c in the_map.classes]
    splits = []
    for same_size in by_size.values():
        split, _, _ = load_files(same_size, the_map, None, "evaluation", root)
        splits.append(SegmentationSplit(split.images, ids[split.labels], split.names, split.roi))
    return splits
