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
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skal_seg.data import (
    CAMVID_CLASSES, CLASSES_FILE, IGNORE_INDEX, SegmentationSplit, _split_pairs, check_working_size, fraction_split,
    read_class_names, read_image, read_label_values, read_roi,
)
from skal_seg.label_map import LabelMap, LabelSurvey

__all__ = [
    "DATASET_FILE", "LAYOUTS", "Dataset", "DatasetSpec", "FileSet", "Layout", "SplitFiles", "dataset_files",
    "dataset_spec", "load_dataset", "load_files", "match_files", "match_pattern",
]

#: Optional file in a dataset folder holding :func:`dataset_spec` options (JSON object).
DATASET_FILE = "dataset.json"

_ID = "{id}"
_TOKENS = re.compile(r"(\{id\}|\*|\?)")


# --------------------------------------------------------------------------- file patterns


@dataclass(frozen=True)
class SplitFiles:
    """Where one split's files are: patterns relative to the dataset folder.

    Attributes
    ----------
    images : str
        Pattern of the images, with ``{id}`` once (see :func:`match_pattern`).
    labels : str or None, default=None
        Pattern of the label maps (same ``{id}`` as their image).
    roi : str or None, default=None
        Pattern of the region-of-interest masks (same ``{id}``): pixels
        whose stored value is 0 are not part of the task.
    ids : str or None, default=None
        Text file (relative to the dataset folder) listing the ids of the
        split, one per line (the first word of a line): only those are
        kept, and each must have its files (the ``ImageSets/*.txt`` of
        Pascal VOC). None: every id found.
    """

    images: str
    labels: str | None = None
    roi: str | None = None
    ids: str | None = None


@dataclass(frozen=True)
class FileSet:
    """The files of one image: the image, its label map and its region of interest.

    Attributes
    ----------
    id : str
        What ``{id}`` matched (may hold ``/`` when it spans sub-folders).
    image : Path
    label : Path or None
    roi : Path or None
    """

    id: str
    image: Path
    label: Path | None = None
    roi: Path | None = None


def _regex(pattern: str) -> re.Pattern:
    parts = []
    for token in _TOKENS.split(pattern):
        if token == _ID:
            parts.append(r"(?P<id>.+?)")  # the shortest id that makes the whole path match
        elif token == "*":
            parts.append(r"[^/]*")
        elif token == "?":
            parts.append(r"[^/]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


def _walk(base: Path):
    """Every file below ``base`` (not hidden, nor in hidden folders), as paths relative to it, sorted."""
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(base)
        for name in sorted(filenames):
            if not name.startswith("."):
                yield (rel / name).as_posix()


def match_pattern(root: str | Path, pattern: str, option: str = "--images") -> dict[str, Path]:
    """The files a pattern matches, by their ``{id}``.

    A pattern is a path relative to ``root`` (``/``-separated; an absolute
    path is taken as it is) that holds ``{id}`` exactly once: the part of
    the file name that an image shares with its label map. ``{id}`` matches
    one or more characters, ``/`` included, so an id may span sub-folders
    (Cityscapes' ``leftImg8bit/train/{id}_leftImg8bit.png`` gives ids such
    as ``aachen/aachen_000000_000019``); where two readings are possible it
    takes the shortest. ``*`` matches any characters within one folder
    name or file name, ``?`` one character. Hidden files and folders are
    skipped.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    pattern : str
        For example ``"training/images/{id}_training.tif"``.
    option : str, default="--images"
        The option that gave the pattern, for error messages.

    Returns
    -------
    dict of str to Path
        ``{id: file}``, sorted by id.

    Raises
    ------
    ValueError
        ``{id}`` missing or repeated, two files with the same id, or no
        file matching (the message shows what the folder holds).
    FileNotFoundError
        The pattern's fixed folder does not exist.
    """
    if pattern.count(_ID) != 1:
        raise ValueError(f"{option} {pattern!r} must hold {_ID} exactly once: the part of each file name that "
                         f"pairs an image with its label (e.g. 'images/{_ID}.png' and 'labels/{_ID}_mask.png')")
    full = (Path(root) / pattern).as_posix().split("/")
    fixed = next(i for i, part in enumerate(full) if _TOKENS.search(part))
    base = Path("/".join(full[:fixed]) or "/")
    if not base.is_dir():
        raise FileNotFoundError(f"{option} {pattern!r}: folder {base} not found")
    regex = _regex("/".join(full[fixed:]))
    found: dict[str, list[Path]] = {}
    files = list(_walk(base))
    for rel in files:
        m = regex.fullmatch(rel)
        if m:
            found.setdefault(m["id"], []).append(base / rel)
    twins = [paths for paths in found.values() if len(paths) > 1]
    if twins:
        raise ValueError(f"{option} {pattern!r}: two files have the same {_ID} {_id_of(twins[0][0], regex, base)!r}: "
                         f"{', '.join(p.name for p in twins[0])}; make the pattern more precise (e.g. name the "
                         f"extension)")
    if not found:
        held = (f"which holds {len(files)} file{'s' if len(files) != 1 else ''} such as {', '.join(files[:3])}"
                if files else "which is empty")
        raise ValueError(f"no file matches {option} {pattern!r} (looked in {base}, {held})")
    return {i: found[i][0] for i in sorted(found)}


def _id_of(path: Path, regex: re.Pattern, base: Path) -> str:
    return regex.fullmatch(path.relative_to(base).as_posix())["id"]


def _read_ids(root: Path, ids_file: str) -> list[str]:
    path = root / ids_file
    if not path.is_file():
        raise FileNotFoundError(f"list of ids not found: {path}")
    ids = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.split()]
    if not ids:
        raise ValueError(f"{path}: the list of ids is empty")
    return ids


def _unpaired(kind: str, missing: str, ids: Sequence[str], paths: dict[str, Path] | None, option: str) -> str:
    n = len(ids)
    shown = ", ".join(f"{i} ({paths[i].name})" if paths else i for i in ids[:5])
    more = f" and {n - 5} more" if n > 5 else ""
    return f"{n} {kind}{'s' if n != 1 else ''} without {missing} ({option}): {shown}{more}"


def match_files(root: str | Path, files: SplitFiles, split: str = "pool",
                options: Sequence[str] = ("--images", "--labels", "--roi")) -> list[FileSet]:
    """Pair a split's images with their label maps and regions of interest by ``{id}``.

    Parameters
    ----------
    root : path-like
        Dataset folder.
    files : SplitFiles
        The split's patterns (labels and regions optional: an image-only
        split, as a labeling project starts from, is fine).
    split : str, default="pool"
        Name of the split, for messages.
    options : (str, str, str), default=("--images", "--labels", "--roi")
        The options that gave the three patterns, for messages.

    Returns
    -------
    list of FileSet
        Sorted by id.

    Raises
    ------
    ValueError
        A pattern error (see :func:`match_pattern`); an image without a
        label map or region of interest, or one of those without an image
        (each named, with the pattern); with ``files.ids``, a listed id
        without its files.
    FileNotFoundError
        A pattern's folder or the ids file does not exist.
    """
    root = Path(root)
    images = match_pattern(root, files.images, options[0])
    companions = {kind: (match_pattern(root, pattern, option), f"{option} {pattern!r}")
                  for kind, pattern, option in (("label", files.labels, options[1]),
                                                ("region of interest", files.roi, options[2])) if pattern}
    problems = []
    if files.ids is not None:
        ids = _read_ids(root, files.ids)
        for kind, (found, option) in (("image", (images, f"{options[0]} {files.images!r}")), *companions.items()):
            missing = [i for i in ids if i not in found]
            if missing:
                problems.append(f"{len(missing)} id{'s' if len(missing) != 1 else ''} of {files.ids} without "
                                f"{'an' if kind[0] in 'ir' else 'a'} {kind} ({option}): {', '.join(missing[:5])}"
                                f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''}")
        ids = sorted(set(ids))
    else:
        ids = list(images)
        for kind, (found, option) in companions.items():
            lonely = [i for i in images if i not in found]
            if lonely:
                problems.append(_unpaired("image", f"a {kind}", lonely, images, option))
            orphans = [i for i in found if i not in images]
            if orphans:
                problems.append(_unpaired(kind if kind == "label" else "region-of-interest mask", "an image",
                                          orphans, found, f"{options[0]} {files.images!r}"))
    if problems:
        raise ValueError(f"{split}: each image needs its files under the same {_ID} -- " + "; ".join(problems))
    found = {kind: paths for kind, (paths, _) in companions.items()}
    return [FileSet(i, images[i], found.get("label", {}).get(i), found.get("region of interest", {}).get(i))
            for i in ids]


def folder_files(root: str | Path, split: str) -> list[FileSet]:
    """The package's own layout: ``root/split/NAME.EXT`` beside ``NAME_label.png``.

    Parameters
    ----------
    root : path-like
    split : str
        Sub-folder, e.g. ``"train"``.

    Returns
    -------
    list of FileSet
        Sorted by name.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`skal_seg.data.load_split`.
    """
    return [FileSet(name, image, label) for name, image, label in _split_pairs(Path(root) / split)]


# --------------------------------------------------------------------------- ready-made layouts

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
#: The labelIds of :data:`CITYSCAPES_CLASSES` (the 19 train ids, in order); every other labelId is ignored.
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

#: Pascal-Context's 59 classes (stored as 1-59 in the common PNG conversion; 0 is "background", ignored).
PASCAL_CONTEXT_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle", "building",
    "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain", "dog", "door",
    "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike", "mountain",
    "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves", "sidewalk", "sign",
    "sky", "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall", "water", "window",
    "wood",
)

#: ADE20K's 150 classes (stored as 1-150 in ADEChallengeData2016; 0 is "other", ignored).
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel",
    "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step",
    "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)


@dataclass(frozen=True)
class Layout:
    """A public dataset's folder layout and label convention, as distributed.

    Attributes
    ----------
    name : str
    pool, test : SplitFiles
        The training split (the pool) and the split scored as the test
        (the validation split where the test labels are not public).
    label_map : LabelMap
    scene_file : str or None
        File listing each image's scene (``ID SCENE`` per line), for
        keeping a scene subset (``scene=``); None: no scenes.
    root : str
        Which folder ``--data`` names, for messages and docs.
    """

    name: str
    pool: SplitFiles
    test: SplitFiles
    label_map: LabelMap
    scene_file: str | None = None
    root: str = ""


def _shifted(classes: Sequence[str], name: str) -> LabelMap:
    """Stored value ``i + 1`` is class ``i``; 0 (and 255) mean no label."""
    return LabelMap.from_pairs(((i + 1, c) for i, c in enumerate(classes)), ignore=(0, 255), source=f"layout {name}")


#: The ready-made layouts, by ``--layout`` name.
LAYOUTS: dict[str, Layout] = {
    "cityscapes": Layout(
        "cityscapes",
        SplitFiles("leftImg8bit/train/{id}_leftImg8bit.png", "gtFine/train/{id}_gtFine_labelIds.png"),
        SplitFiles("leftImg8bit/val/{id}_leftImg8bit.png", "gtFine/val/{id}_gtFine_labelIds.png"),
        LabelMap.from_pairs(zip(CITYSCAPES_LABEL_IDS, CITYSCAPES_CLASSES),
                            ignore=[*sorted(set(range(34)) - set(CITYSCAPES_LABEL_IDS)), 255],
                            source="layout cityscapes"),
        root="the folder holding leftImg8bit/ and gtFine/",
    ),
    "voc": Layout(
        "voc",
        SplitFiles("JPEGImages/{id}.jpg", "SegmentationClass/{id}.png", ids="ImageSets/Segmentation/train.txt"),
        SplitFiles("JPEGImages/{id}.jpg", "SegmentationClass/{id}.png", ids="ImageSets/Segmentation/val.txt"),
        LabelMap.identity(VOC_CLASSES, ignore=(255,), source="layout voc"),
        root="VOCdevkit/VOC2012",
    ),
    "pascal-context": Layout(
        "pascal-context",
        SplitFiles("JPEGImages/{id}.jpg", "SegmentationClassContext/{id}.png",
                   ids="ImageSets/SegmentationContext/train.txt"),
        SplitFiles("JPEGImages/{id}.jpg", "SegmentationClassContext/{id}.png",
                   ids="ImageSets/SegmentationContext/val.txt"),
        _shifted(PASCAL_CONTEXT_CLASSES, "pascal-context"),
        root="VOCdevkit/VOC2010 with the 59-class PNGs in SegmentationClassContext/",
    ),
    "ade20k": Layout(
        "ade20k",
        SplitFiles("images/training/{id}.jpg", "annotations/training/{id}.png"),
        SplitFiles("images/validation/{id}.jpg", "annotations/validation/{id}.png"),
        _shifted(ADE20K_CLASSES, "ade20k"),
        scene_file="sceneCategories.txt",
        root="ADEChallengeData2016",
    ),
}


def _scene_ids(root: Path, layout: Layout, scene: str) -> set[str]:
    path = root / layout.scene_file
    if not path.is_file():
        raise FileNotFoundError(f"scene list not found: {path} (layout {layout.name} keeps a scene with it)")
    scenes = dict(line.split()[:2] for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 2)
    ids = {i for i, s in scenes.items() if s == scene}
    if not ids:
        common = ", ".join(f"{s} ({n})" for s, n in Counter(scenes.values()).most_common(8))
        raise ValueError(f"no image of scene {scene!r} in {path}; the most frequent scenes: {common}")
    return ids


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
                             f"by {_ID})")
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
        wanted = _scene_ids(root, layout, spec.scene)
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

    Label maps are read as stored values (:func:`~skal_seg.data.read_label_values`;
    colours only for a colour map), regions of interest with
    :func:`~skal_seg.data.read_roi`; both nearest-neighbour resized.
    Labels become class ids through ``label_map``; pixels outside the
    region of interest become :data:`~skal_seg.data.IGNORE_INDEX`.

    Parameters
    ----------
    files : sequence of FileSet
        Each with a label map (and all or none with a region of interest).
    label_map : LabelMap
    size : int, (int, int) or None, default=128
        Working size (see :func:`skal_seg.data.working_size`).
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
    check_working_size([(f.image, {"label": f.label, **({"region of interest": f.roi} if f.roi else {})})
                        for f in files], size, split)
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
        Working size of both splits (see :func:`skal_seg.data.working_size`).
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
