"""What the values stored in label files mean, and a check of a dataset's values before any work.

Label files store *values* (:func:`skal_seg.image_io.read_label_values`: gray
levels, palette indices, or on request colours). A :class:`LabelMap` says
which class each value is and which values mean "no label" (ignored: never
scored, teach nothing). A :class:`LabelSurvey` counts the values a split
actually holds; :meth:`LabelSurvey.check` compares them with the map before
any work and fails with a message that names the value, the files and the
option that fixes it, or returns warnings for the plan.

The text form of a map, as the ``--label-map`` option takes it, is
``VALUE:NAME,VALUE:NAME,...`` (``0:background,255:vessel``); values may be
``#RRGGBB`` colours for colour-coded label files
(``#000000:background,#ff0000:vessel``). Class ids follow the order in which
names first appear; several values may name one class.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from skal_seg.data import CLASSES_FILE, IGNORE_INDEX, check_class_names

__all__ = ["DEFAULT_IGNORE", "IGNORE_SHARE_WARNING", "LabelMap", "LabelSurvey"]

#: Stored value that means "no label" when nothing says otherwise (unless a map names it as a class).
DEFAULT_IGNORE = 255

#: Share of a split's pixels held by ignore values above which the plan warns (the data may be misread).
IGNORE_SHARE_WARNING = 0.5

_MAX_VALUE = 65535  # label files hold at most 16-bit values
_COLOUR = re.compile(r"#([0-9a-fA-F]{6})")


def _parse_value(text, where: str) -> tuple[int, bool]:
    """``(value, is_colour)`` from an int, ``"17"`` or ``"#ff8800"``."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        value, colour = int(text), False
    else:
        text = str(text).strip()
        m = _COLOUR.fullmatch(text)
        if m:
            return int(m[1], 16), True
        if not text.isdigit():
            raise ValueError(f"{where}: {text!r} is not a label value (an integer 0-{_MAX_VALUE}, or a colour "
                             f"#RRGGBB)")
        value, colour = int(text), False
    if not 0 <= value <= _MAX_VALUE:
        raise ValueError(f"{where}: label value {value} is outside 0-{_MAX_VALUE}")
    return value, colour


@dataclass(frozen=True)
class LabelMap:
    """Which class each stored label value is, and which values mean "no label".

    Build one with :meth:`parse` (``"0:background,255:vessel"``),
    :meth:`from_pairs` or :meth:`identity` (value ``i`` is class ``i``, the
    package's own convention).

    Attributes
    ----------
    classes : tuple of str
        Class names; class id = position.
    values : tuple of (int, int)
        ``(stored value, class id)`` pairs, sorted by value. With
        ``colours``, the values are colours packed as ``0xRRGGBB``.
    ignore : tuple of int
        Stored values that mean "no label" (read as
        :data:`~skal_seg.data.IGNORE_INDEX`: never scored, teach nothing).
    colours : bool, default=False
        The values are colours: label files are read as RGB.
    source : str, default="given"
        Where the map comes from (``"--label-map"``, a file, a layout), for messages.
    ignore_stated : bool, default=False
        ``ignore`` was said (by ``--ignore``, a data file or a layout), not
        assumed: an assumed ignore value that covers most of the data is an
        error (see :meth:`LabelSurvey.check`), a stated one a warning.
    """

    classes: tuple[str, ...]
    values: tuple[tuple[int, int], ...]
    ignore: tuple[int, ...] = (DEFAULT_IGNORE,)
    colours: bool = False
    source: str = "given"
    ignore_stated: bool = False

    def __post_init__(self):
        check_class_names(self.classes, where=self.source)
        mapped = [v for v, _ in self.values]
        twice = sorted(v for v, n in Counter(mapped).items() if n > 1)
        if twice:
            raise ValueError(f"{self.source}: label value {self.value_name(twice[0])} is mapped twice")
        if any(not 0 <= c < len(self.classes) for _, c in self.values):
            raise ValueError(f"{self.source}: class ids must lie in [0, {len(self.classes)})")
        nameless = sorted(set(range(len(self.classes))) - {c for _, c in self.values})
        if nameless:
            raise ValueError(f"{self.source}: no value maps to class {self.classes[nameless[0]]!r}")
        both = sorted(set(mapped) & set(self.ignore))
        if both:
            raise ValueError(f"{self.source}: {self.value_name(both[0])} is both a class "
                             f"({self.classes[self.lookup[both[0]]]}) and ignored; it can only be one")

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int | str, str]], ignore: Iterable[int | str] | None = None, *,
                   source: str = "given") -> "LabelMap":
        """A map from ``(value, class name)`` pairs.

        Parameters
        ----------
        pairs : iterable of (int or str, str)
            Stored value (an int, its text, or a ``"#RRGGBB"`` colour) and
            its class name. Class ids follow the order in which names first
            appear; several values may share a name.
        ignore : iterable of int or str, optional
            Values that mean "no label". None: 255 unless a pair maps 255
            (none for colour maps), marked as assumed (not stated).
        source : str, default="given"
            Where the pairs come from, for messages.

        Returns
        -------
        LabelMap

        Raises
        ------
        ValueError
            No pairs, a bad value, a value mapped twice, values and colours
            mixed, fewer than 2 or more than 255 classes, an empty name, or
            a value both mapped and ignored.
        """
        names: dict[str, int] = {}
        values, kinds = [], set()
        for value, name in pairs:
            v, colour = _parse_value(value, source)
            kinds.add(colour)
            name = str(name).strip()
            if not name:
                raise ValueError(f"{source}: label value {value} has an empty class name")
            values.append((v, names.setdefault(name, len(names))))
        if not values:
            raise ValueError(f"{source}: the label map is empty (expected VALUE:NAME,VALUE:NAME,...)")
        if len(kinds) > 1:
            raise ValueError(f"{source}: a label map holds either values or #RRGGBB colours, not both")
        colours = kinds == {True}
        if ignore is None:
            assumed = () if colours or any(v == DEFAULT_IGNORE for v, _ in values) else (DEFAULT_IGNORE,)
            return cls(tuple(names), tuple(sorted(values)), assumed, colours, source, ignore_stated=False)
        ignored = tuple(sorted({_parse_value(v, f"{source} (ignore)")[0] for v in ignore}))
        return cls(tuple(names), tuple(sorted(values)), ignored, colours, source, ignore_stated=True)

    @classmethod
    def parse(cls, text: str, ignore: Iterable[int | str] | None = None, *, source: str = "--label-map") -> "LabelMap":
        """A map from its text form ``"VALUE:NAME,VALUE:NAME,..."``.

        Parameters
        ----------
        text : str
            For example ``"0:background,255:vessel"`` or
            ``"#000000:background,#ff0000:vessel"``. Spaces around items
            are dropped; names may hold spaces (``"7:traffic light"``).
        ignore : iterable of int or str, optional
            As in :meth:`from_pairs`.
        source : str, default="--label-map"

        Returns
        -------
        LabelMap

        Raises
        ------
        ValueError
            An item without ``:``, and as :meth:`from_pairs`.
        """
        pairs = []
        for item in str(text).split(","):
            if not item.strip():
                continue
            value, sep, name = item.partition(":")
            if not sep:
                raise ValueError(f"{source}: {item.strip()!r} is not VALUE:NAME (e.g. 0:background,255:vessel)")
            pairs.append((value, name))
        return cls.from_pairs(pairs, ignore, source=source)

    @classmethod
    def from_mapping(cls, mapping: Mapping | str, ignore: Iterable[int | str] | None = None, *,
                     source: str = "given") -> "LabelMap":
        """A map from a JSON-style object ``{"0": "background", "255": "vessel"}`` or the text form.

        Parameters
        ----------
        mapping : mapping of value to name, or str
        ignore : iterable of int or str, optional
            As in :meth:`from_pairs`.
        source : str, default="given"

        Returns
        -------
        LabelMap
        """
        if isinstance(mapping, str):
            return cls.parse(mapping, ignore, source=source)
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{source}: a label map is an object {{\"VALUE\": \"NAME\", ...}} or a string "
                             f"\"VALUE:NAME,...\", got {type(mapping).__name__}")
        return cls.from_pairs(mapping.items(), ignore, source=source)

    @classmethod
    def identity(cls, classes: Sequence[str], ignore: Iterable[int | str] | None = None, *,
                 source: str = "given") -> "LabelMap":
        """Value ``i`` is class ``i`` (the package's own folder convention, ``classes.txt``).

        Parameters
        ----------
        classes : sequence of str
            Class names in id order.
        ignore : iterable of int or str, optional
            None: 255, assumed.
        source : str, default="given"

        Returns
        -------
        LabelMap
        """
        return cls.from_pairs(enumerate(classes), ignore, source=source)

    def with_ignore(self, ignore: Iterable[int | str], source: str | None = None) -> "LabelMap":
        """The same classes with ``ignore`` as the (stated) "no label" values.

        Parameters
        ----------
        ignore : iterable of int or str
            May be empty (no value means "no label").
        source : str, optional
            Appended to :attr:`source` (e.g. ``"--ignore"``).

        Returns
        -------
        LabelMap
        """
        ignored = tuple(sorted({_parse_value(v, source or self.source)[0] for v in ignore}))
        where = self.source if source is None else f"{self.source}, {source}"
        return LabelMap(self.classes, self.values, ignored, self.colours, where, ignore_stated=True)

    # ------------------------------------------------------------------ reading

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @cached_property
    def lookup(self) -> dict[int, int]:
        """``{stored value: class id}``."""
        return dict(self.values)

    def value_name(self, value: int) -> str:
        """A stored value as the user writes it: ``"255"``, or ``"#ff0000"`` for colour maps."""
        return f"#{int(value):06x}" if self.colours else str(int(value))

    def to_text(self) -> str:
        """The text form, as ``--label-map`` takes it (``"0:background,255:vessel"``)."""
        return ",".join(f"{self.value_name(v)}:{self.classes[c]}" for v, c in self.values)

    def describe(self) -> str:
        """One line: the map, the ignore values and where they come from."""
        ignore = ", ".join(self.value_name(v) for v in self.ignore)
        if ignore and not self.ignore_stated:
            ignore += " (by default)"
        return f"{self.to_text()} (from {self.source}); ignore: {ignore or 'none'}"

    def apply(self, values: np.ndarray, *, unmapped: int | None = None) -> np.ndarray:
        """Class ids of stored values.

        Parameters
        ----------
        values : ndarray of int
            Stored values (or packed colours), any shape.
        unmapped : int, optional
            Id given to values the map does not know. None: such values are
            an error.

        Returns
        -------
        ndarray of uint8, the shape of ``values``
            Class ids, :data:`~skal_seg.data.IGNORE_INDEX` for ignore values.

        Raises
        ------
        ValueError
            Values that are neither mapped nor ignored (with ``unmapped=None``).
        """
        values = np.asarray(values)
        found, inverse = np.unique(values, return_inverse=True)
        ids = np.array([self.lookup.get(int(v), IGNORE_INDEX if int(v) in self.ignore else -1) for v in found],
                       dtype=np.int64)
        if (ids < 0).any():
            if unmapped is None:
                bad = ", ".join(self.value_name(v) for v in found[ids < 0][:10])
                raise ValueError(f"label values {bad} map to no class of the label map {self.to_text()}")
            ids[ids < 0] = unmapped
        return ids.astype(np.uint8)[inverse].reshape(values.shape)


# --------------------------------------------------------------------------- survey


def _share(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f} %" if total else "0 %"


def _listing(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


@dataclass
class LabelSurvey:
    """The stored label values of one split, counted inside its region of interest.

    Fill it with :meth:`add` (one call per label file, at the working
    size), then :meth:`check` it against the label map.

    Attributes
    ----------
    split : str
        Name of the split (``"pool"``, ``"test"``), for messages.
    n_images : int
    pixels : int
        All pixels of the split's label maps.
    outside : int
        Pixels outside the region of interest (not counted in ``counts``).
    counts : Counter
        ``{stored value: pixels}`` inside the region of interest.
    files : Counter
        ``{stored value: number of label files holding it}``.
    examples : dict of int to list of str
        ``{stored value: the first few label files holding it}``.
    """

    split: str
    n_images: int = 0
    pixels: int = 0
    outside: int = 0
    counts: Counter = field(default_factory=Counter)
    files: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add(self, values: np.ndarray, roi: np.ndarray | None, name: str) -> None:
        """Count one label file's values.

        Parameters
        ----------
        values : ndarray of shape (H, W), int
            Stored values (:func:`~skal_seg.image_io.read_label_values`).
        roi : ndarray of shape (H, W), bool, or None
            Region of interest; pixels outside are not counted.
        name : str
            The label file, as messages show it.
        """
        self.n_images += 1
        self.pixels += values.size
        inside = values if roi is None else values[roi]
        self.outside += values.size - inside.size
        found, counts = np.unique(inside, return_counts=True)
        for v, n in zip(found.tolist(), counts.tolist()):
            self.counts[v] += n
            self.files[v] += 1
            if len(self.examples.setdefault(v, [])) < 3:
                self.examples[v].append(name)

    @property
    def inside(self) -> int:
        """Pixels inside the region of interest (all pixels when there is none)."""
        return self.pixels - self.outside

    def _where(self, value: int, label_map: LabelMap) -> str:
        n = self.files[value]
        files = ", ".join(self.examples[value]) + (f" and {n - len(self.examples[value])} more" if
                                                     n > len(self.examples[value]) else "")
        return (f"{label_map.value_name(value)} ({self.counts[value]:,} pixels in {n} file{'s' if n != 1 else ''}: "
                f"{files})")

    def class_pixels(self, label_map: LabelMap) -> np.ndarray:
        """Pixels of each class (inside the region of interest).

        Parameters
        ----------
        label_map : LabelMap

        Returns
        -------
        ndarray of shape (n_classes,), int64
        """
        out = np.zeros(label_map.n_classes, dtype=np.int64)
        for v, n in self.counts.items():
            if v in label_map.lookup:
                out[label_map.lookup[v]] += n
        return out

    def ignored_pixels(self, label_map: LabelMap) -> int:
        """Pixels inside the region of interest that hold an ignore value."""
        return sum(n for v, n in self.counts.items() if v in label_map.ignore)

    def lines(self, label_map: LabelMap, limit: int = 8) -> list[str]:
        """One line describing the split's values, as the plan prints it.

        Parameters
        ----------
        label_map : LabelMap
        limit : int, default=8
            Values listed by name (the most frequent); the rest are counted.

        Returns
        -------
        list of str
        """
        region = " inside the region of interest" if self.outside else ""
        parts = []
        for v, n in self.counts.most_common():
            meaning = (label_map.classes[label_map.lookup[v]] if v in label_map.lookup
                       else "ignore" if v in label_map.ignore else "NO CLASS")
            parts.append(f"{label_map.value_name(v)} -> {meaning} {_share(n, self.inside)}")
        line = (f"{self.split}: {self.n_images} image{'s' if self.n_images != 1 else ''}; label values{region}: "
                f"{_listing(parts, limit)}")
        if self.outside:
            line += (f"; {_share(self.outside, self.pixels)} of the pixels are outside the region of interest "
                     f"(never candidates, never scored)")
        return [line]

    def check(self, label_map: LabelMap, classes_file: str = CLASSES_FILE) -> list[str]:
        """Compare the split's values with the map: fail on what would be misread, warn on the rest.

        Errors (``ValueError``, before any work):

        * a value that is neither a class nor ignored: the message names the
          value, its pixel count, files that hold it and the option that
          fixes it (``--label-map``, ``--ignore``);
        * an *assumed* ignore value (255 when no map or ``--ignore`` says
          so) that covers more than half of the pixels, or beside which at
          most one class occurs: the 0/255 mask whose 255 is a class. The
          message suggests the ``--label-map`` that reads it as a class, and
          ``--ignore 255`` for when it truly means "no label".

        Parameters
        ----------
        label_map : LabelMap
        classes_file : str, default="classes.txt"
            The class list file named in the hint when the map is the
            identity of one.

        Returns
        -------
        list of str
            Warnings for the plan: classes that never occur (inside the
            region of interest), ignore values covering more than half of
            the pixels.

        Raises
        ------
        ValueError
            As above.
        """
        unmapped = sorted(v for v in self.counts if v not in label_map.lookup and v not in label_map.ignore)
        if unmapped:
            what = "; ".join(self._where(v, label_map) for v in unmapped[:5])
            more = f" and {len(unmapped) - 5} more values" if len(unmapped) > 5 else ""
            one = len(unmapped) == 1
            folder_hint = (f", or name every class in {classes_file} (line i is value i)"
                           if label_map.source.endswith(classes_file) or "CamVid" in label_map.source else "")
            raise ValueError(
                f"{self.split}: label value{'' if one else 's'} {what}{more} map{'s' if one else ''} to no class of "
                f"the label map {label_map.to_text()} (from {label_map.source}). Map every stored value to a class "
                f"name: --label-map {self._suggestion(label_map)} (also \"label_map\" in dataset.json){folder_hint}; "
                f"or mark values that mean 'no label' with --ignore VALUE"
            )
        present = self.class_pixels(label_map) > 0
        ignored = self.ignored_pixels(label_map)
        share = ignored / self.inside if self.inside else 0.0
        if not label_map.ignore_stated and ignored and (share > IGNORE_SHARE_WARNING or present.sum() <= 1):
            values = ", ".join(label_map.value_name(v) for v in label_map.ignore if self.counts[v])
            absent = [f"'{c}'" for c, p in zip(label_map.classes, present) if not p]
            never = (f", and class{'es' if len(absent) > 1 else ''} {_listing(absent, 5)} never "
                     f"occur{'' if len(absent) > 1 else 's'}" if absent else "")
            raise ValueError(
                f"{self.split}: {_share(ignored, self.inside)} of the pixels hold {values}, which is read as 'no "
                f"label' (ignored) by default, as nothing says what it means{never}. If {values} is a class, "
                f"map the stored values to classes: --label-map {self._suggestion(label_map, True)} "
                f"(also \"label_map\" in dataset.json); if {values} means 'no label', say so: "
                f"--ignore {values.replace(', ', ' ')}"
            )
        warnings = []
        absent = [f"'{c}'" for c, p in zip(label_map.classes, present) if not p]
        if absent:
            consequence = ("no query can find them" if self.split == "pool"
                           else "they are scored only where predicted, with IoU 0")
            warnings.append(f"{self.split}: {len(absent)} of {label_map.n_classes} classes never occur"
                            f"{' inside the region of interest' if self.outside else ''} ({consequence}): "
                            f"{_listing(absent)}")
        if share > IGNORE_SHARE_WARNING:
            values = ", ".join(label_map.value_name(v) for v in label_map.ignore if self.counts[v])
            warnings.append(f"{self.split}: ignore values ({values}) cover {_share(ignored, self.inside)} of the "
                            f"pixels{' inside the region of interest' if self.outside else ''}")
        return warnings

    def _suggestion(self, label_map: LabelMap, ignored_as_classes: bool = False) -> str:
        """A ``--label-map`` value for the values found.

        The class names in value order when there are as many values as
        classes; else the known pairs plus ``VALUE:NAME`` for the others.
        ``ignored_as_classes``: the (assumed) ignore values are offered as classes too.
        """
        found = [v for v in sorted(self.counts) if ignored_as_classes or v not in label_map.ignore]
        if len(found) == label_map.n_classes:
            return ",".join(f"{label_map.value_name(v)}:{n}" for v, n in zip(found, label_map.classes))
        if ignored_as_classes:
            items = [f"{label_map.value_name(v)}:NAME" for v in found]
        else:
            items = [f"{label_map.value_name(v)}:{label_map.classes[label_map.lookup[v]]}" if v in label_map.lookup
                     else f"{label_map.value_name(v)}:NAME" for v in found]
        return ",".join(items) if len(items) <= 12 else "VALUE:NAME,VALUE:NAME,..."
