"""What a labeling project holds: its image files (found, hashed) and its classes (names, colours, void words)."""

from __future__ import annotations

import colorsys
import fnmatch
import hashlib
from pathlib import Path
from typing import Sequence

from PIL import Image

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
        if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(p.name, pat) for pat in exclude):
            continue
        found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


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
