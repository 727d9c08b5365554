"""Which files make a split: ``{id}`` file patterns pairing each image with its label map and region of interest.

A pattern is relative to the dataset folder; ``{id}`` stands for the part of
the name that pairs the files (it may span sub-folders, as Cityscapes' city
folders do), ``*`` and ``?`` match within one name. Errors name the option,
the pattern and the files: images without a label, labels without an image,
no match at all (with what the folder holds), two files with one id.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skal_seg.data import _split_pairs

#: The placeholder of the part of a file name that pairs an image with its label map.
ID_PLACEHOLDER = "{id}"
_TOKENS = re.compile(r"(\{id\}|\*|\?)")


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
        if token == ID_PLACEHOLDER:
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
    if pattern.count(ID_PLACEHOLDER) != 1:
        raise ValueError(f"{option} {pattern!r} must hold {ID_PLACEHOLDER} exactly once: the part of each file name that "
                         f"pairs an image with its label (e.g. 'images/{ID_PLACEHOLDER}.png' and 'labels/{ID_PLACEHOLDER}_mask.png')")
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
        raise ValueError(f"{option} {pattern!r}: two files have the same {ID_PLACEHOLDER} {_id_of(twins[0][0], regex, base)!r}: "
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
        raise ValueError(f"{split}: each image needs its files under the same {ID_PLACEHOLDER} -- " + "; ".join(problems))
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
