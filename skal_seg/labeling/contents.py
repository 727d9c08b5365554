"""What a labeling project holds: its image files (found, hashed) and its classes (names, colours, void words)."""

from __future__ import annotations

import colorsys
import fnmatch
import hashlib
import os
from pathlib import Path
from typing import Sequence

from PIL import Image

from skal_seg.file_patterns import ID_PLACEHOLDER, SplitFiles, match_files
from skal_seg.image_io import read_image, read_roi
from skal_seg.labeling.store import VOID


#: Colours of the first classes (then generated); CamVid-like, distinguishable on photos.
PALETTE = (
    "#4682b4", "#b22222", "#ffd700", "#808080", "#deb887", "#228b22", "#ff8c00", "#8a2be2",
    "#00ced1", "#ff1493", "#7fff00", "#a0522d", "#000080", "#ff6347", "#2e8b57", "#daa520",
)


#: Extra words accepted for a void / unsure answer in imports.
VOID_WORDS = (VOID, "unsure", "void/unsure")


def class_colour(i: int) -> str:
    """Colour ``'#rrggbb'`` of class ``i`` (the palette, then golden-angle hues)."""
    if i < len(PALETTE):
        return PALETTE[i]
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 0.9)
    return "#%02x%02x%02x" % (int(r * 255), int(g * 255), int(b * 255))


def find_images(root: str | Path, exclude: Sequence[str] = ()) -> list[Path]:
    """Image files under ``root`` (any depth), sorted by relative path.

    Parameters
    ----------
    root : path
        A folder (searched recursively) or one image file.
    exclude : sequence of str
        Glob patterns (``fnmatch``) matched against the relative path and the
        file name; matching files are skipped (e.g. ``"*_label.png"``).

    Returns
    -------
    list of Path
        Files whose extension PIL registers as an image format, hidden
        files and folders skipped.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    extensions = {e.lower() for e in Image.registered_extensions()}
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or p.suffix.lower() not in extensions or any(part.startswith(".") for part in rel.split("/")):
            continue
        if excluded(rel, exclude):
            continue
        found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def excluded(rel: str, exclude: Sequence[str]) -> bool:
    """Whether a file (its ``/``-separated path relative to the images folder) matches a glob of ``exclude``.

    A pattern matches the relative path or the file name (``fnmatch``).
    """
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in exclude)


def image_records(images: str | Path, roi: str | None, exclude: Sequence[str], data: Path
                  ) -> tuple[list[tuple], dict[str, str], Path]:
    """A new project's images, read once (every file proved readable before anything is written).

    Parameters
    ----------
    images : path or str
        A folder or one file (:func:`find_images`), or, holding ``{id}``,
        a file pattern (:func:`~skal_seg.file_patterns.match_files`).
        Both relative to ``data``.
    roi : str or None
        With a pattern: the pattern of each image's region of interest
        (same ``{id}``; a mask of the image's size, 0 = outside).
    exclude : sequence of str
        Glob patterns of files to leave out (:func:`excluded`).
    data : Path
        The folder ``images`` and ``roi`` are relative to.

    Returns
    -------
    records : list of (str, str, int, int)
        ``(path relative to base, sha256, width, height)`` per image, sorted.
    rois : dict of str to str
        ``{image path: region-of-interest path}`` (relative to ``base``
        where it lies below it, else absolute); empty without ``roi``.
    base : Path
        The folder the image paths are relative to (the project's ``images_root``).

    Raises
    ------
    FileNotFoundError
        A folder that does not exist.
    ValueError
        No images, an unreadable image or mask, a mask of another size than
        its image or empty, unpaired files, or ``roi`` without a pattern.
    """
    data = data.resolve()
    if ID_PLACEHOLDER not in str(images):
        if roi is not None:
            raise ValueError(f"--roi {roi!r} needs --images as a file pattern with {ID_PLACEHOLDER} (the "
                             f"{ID_PLACEHOLDER} pairs each image with its region of interest), got {str(images)!r}")
        root = (data / images).resolve()
        files = [(path, None) for path in find_images(root, exclude)]
        if not files:
            raise ValueError(f"no image files found in {images} (after excluding {list(exclude)})")
        base = root if root.is_dir() else root.parent
    else:
        found = match_files(data, SplitFiles(str(images), roi=roi), split="images")
        base = data
        if not all(f.image.is_relative_to(data) for f in found):  # an absolute pattern elsewhere
            base = Path(os.path.commonpath([f.image.parent for f in found]))
        files = [(f.image, f.roi) for f in found if not excluded(f.image.relative_to(base).as_posix(), exclude)]
        if not files:
            raise ValueError(f"every image of {images} is excluded by {list(exclude)}")
    records, rois = [], {}
    for path, roi_path in files:
        try:
            h, w = read_image(path).shape[:2]
            if roi_path is not None and read_roi(roi_path).shape != (h, w):
                raise ValueError(f"its region of interest {roi_path} is not {h}x{w} (height x width) as the image")
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read image {path}: {err} (remove it or leave it out with exclude)") from err
        rel = path.relative_to(base).as_posix()
        records.append((rel, file_sha256(path), w, h))
        if roi_path is not None:
            rois[rel] = roi_path.relative_to(base).as_posix() if roi_path.is_relative_to(base) else str(roi_path)
    return records, rois, base


def roi_files(settings: dict, images: Sequence[dict]) -> list[Path | None]:
    """The region-of-interest file of each image record of a project (None: the whole image is part of the task).

    Parameters
    ----------
    settings : dict
        The project's settings (``images_root``, and ``rois`` as
        :func:`image_records` gives them; older projects have none).
    images : sequence of dict
        Image records (``path`` relative to ``images_root``).

    Returns
    -------
    list of Path or None
    """
    rois = settings.get("rois") or {}
    return [None if im["path"] not in rois else Path(settings["images_root"]) / rois[im["path"]] for im in images]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_classes(classes) -> list[str]:
    """Class names from a list, a comma-separated string or a text file (one per line, ``#`` comments).

    Raises
    ------
    FileNotFoundError
        A class list file that does not exist.
    ValueError
        No names, repeated names, a name reserved for void answers, or more than 255 classes.
    """
    if isinstance(classes, (str, Path)) and Path(classes).is_file():
        names = [line.strip() for line in Path(classes).read_text().splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
    elif isinstance(classes, Path) or (isinstance(classes, str) and "," not in classes
                                       and classes.lower().endswith((".txt", ".csv", ".names"))):
        raise FileNotFoundError(f"class list file not found: {classes}")
    elif isinstance(classes, str):
        names = [n.strip() for n in classes.split(",") if n.strip()]
    else:
        names = [str(n).strip() for n in classes]
    if not names:
        raise ValueError("classes: give at least one class name (comma-separated or a file with one per line)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"classes: names must be unique, repeated: {dupes}")
    reserved = [n for n in names if n.lower() in VOID_WORDS]
    if reserved:
        raise ValueError(f"classes: {reserved} is reserved for 'void / unsure' answers; rename that class")
    if len(names) > 255:
        raise ValueError(f"classes: at most 255 classes (masks are 8-bit), got {len(names)}")
    return names


def prediction_paths(files: Sequence[Path], root: Path, out: Path, overwrite: bool,
                     project_files: Sequence[Path] = ()) -> list[tuple]:
    """``(mask, overlay)`` paths of each image in ``files`` (relative to ``root``), checked before any is written.

    Raises ValueError (naming the files) when ``out`` holds images to
    predict or ``project_files`` (the project's images), when two images would write the same
    file (``x.png`` and ``x.jpg``; compared case-blind, as macOS and
    Windows do), or, without ``overwrite``, when a file to write exists.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    inside = out.resolve()
    held = [p for p in [*files, *project_files] if inside in Path(p).resolve().parents]
    if held:
        raise ValueError(f"the output folder {out} holds images ({held[0]}"
                         + (f" and {len(held) - 1} more" if len(held) > 1 else "")
                         + "): masks would mix with them or replace them; choose a folder outside the images")
    paths, owner, clashes = [], {}, []
    for path in files:
        mask = out / Path(path).relative_to(root).with_suffix(".png")
        pair = (mask, mask.with_name(mask.stem + "_overlay.png"))
        for target in pair:
            key = target.as_posix().casefold()
            if key in owner:
                clashes.append(f"{owner[key]} and {path} would both write {target}")
            owner.setdefault(key, path)
        paths.append(pair)
    if clashes:
        raise ValueError(f"{len(clashes)} name clash(es), nothing written (a mask is named after its image "
                         f"without the extension): {'; '.join(clashes[:5])}"
                         + (f"; ... and {len(clashes) - 5} more" if len(clashes) > 5 else "")
                         + "; leave one image of each pair out (--exclude) or predict it into another folder")
    existing = [t for pair in paths for t in pair if t.exists()]
    if existing and not overwrite:
        raise ValueError(f"{len(existing)} file(s) to write exist already in {out} ({existing[0]}"
                         + (", ..." if len(existing) > 1 else "")
                         + "); choose another folder, or overwrite=True (--overwrite) to replace them")
    return paths
