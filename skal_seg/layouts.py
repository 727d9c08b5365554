"""Ready-made layouts of public benchmarks: where their files are and what their label values mean.

With CamVid (the package's own ``train/`` + ``test/`` layout) these are the
paper's four benchmarks: Cityscapes (label ids mapped to the 19 train ids),
Pascal VOC (palette PNGs, 255 ignored), Pascal-Context (the common 59-class
PNG conversion, 0 ignored) and ADE20K (0 ignored, 1-150 shifted to 0-149,
with a scene subset such as ADE-Bed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skal_seg.file_patterns import SplitFiles
from skal_seg.label_map import LabelMap

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


def scene_ids(root: Path, layout: Layout, scene: str) -> set[str]:
    """Ids of the images of one scene, from a layout's scene list (ADE20K's ``sceneCategories.txt``).

    Raises
    ------
    FileNotFoundError
        The scene list is missing.
    ValueError
        No image of that scene (the message lists the most frequent scenes).
    """
    path = root / layout.scene_file
    if not path.is_file():
        raise FileNotFoundError(f"scene list not found: {path} (layout {layout.name} keeps a scene with it)")
    scenes = dict(line.split()[:2] for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 2)
    ids = {i for i, s in scenes.items() if s == scene}
    if not ids:
        common = ", ".join(f"{s} ({n})" for s, n in Counter(scenes.values()).most_common(8))
        raise ValueError(f"no image of scene {scene!r} in {path}; the most frequent scenes: {common}")
    return ids
