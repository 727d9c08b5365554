"""Every ```python block of README.md and of docs/ runs as written, so the pages cannot drift from the code.

The blocks of one page run in order, in one namespace (a later block may use what an earlier one made),
with a fresh temporary folder as the current folder: what they write stays there. There, ``data/drive``
is the shared DRIVE folder as distributed (docs/own-data.md reads it); a page that reads it is skipped
where that folder is absent.

Not run:

* a block right after an HTML comment ``<!-- not run: REASON -->`` (invisible on the site); they are
  the blocks that need what this machine lacks (a GPU, a downloaded ADM checkpoint or Hub model, a Ray
  cluster) or a shell session the page ran before, and :data:`NOT_RUN` lists them all, so a new one
  has to be added here, in the open;
* snippet includes (``--8<-- "examples/NAME.py"``, the example scripts shown whole in a collapsed
  box): ``tests/test_examples.py`` runs those scripts.

Blocks are kept small (two or four sample images, one timestep), so that the whole module takes well
under a minute on a 2-core CPU.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVE = ROOT / ".." / "shared" / "data" / "drive"
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

#: (page, first line of the block) of every block marked ``<!-- not run: ... -->``.
NOT_RUN = [
    ("docs/adapt.md", "from skal_seg.diffusion.adapt import adapt_model, pool_image_files"),  # 10 minutes of training
    ("docs/distributed.md", "from skal_seg import DiffusionFeaturizer, TwoStageQuery"),  # a Ray cluster
    ("docs/gpu.md", "from skal_seg.featurizer import DiffusionFeaturizer"),  # an ADM checkpoint on a GPU
    ("docs/gpu.md", "from skal_seg.featurizer import DiffusionFeaturizer"),  # a Hub model on a GPU
    ("docs/gpu.md", "from skal_seg.data import load_split, split_validation"),  # full CamVid, a GPU, a model
    ("docs/labeling.md", "import numpy as np"),  # the project the page's shell commands made
]

_BLOCK = re.compile(r"(?:<!--\s*not run:\s*(?P<why>.*?)\s*-->\n)?^```python\n(?P<code>.*?)^```", re.M | re.S)


def blocks(page: Path) -> list[tuple[str | None, str]]:
    """``(reason not run or None, code)`` of every top-level ```python block of a page, in order."""
    return [(m["why"], m["code"]) for m in _BLOCK.finditer(page.read_text(encoding="utf-8"))
            if not m["code"].lstrip().startswith("--8<--")]


def _name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def test_the_blocks_not_run_are_the_listed_ones():
    marked = sorted((_name(page), code.splitlines()[0]) for page in PAGES for why, code in blocks(page) if why)
    assert marked == sorted(NOT_RUN), "a block marked <!-- not run --> must be listed in NOT_RUN, and back"
    assert all(why.strip() for page in PAGES for why, _ in blocks(page) if why is not None)


@pytest.mark.parametrize("page", [p for p in PAGES if any(why is None for why, _ in blocks(p))], ids=_name)
def test_python_blocks_run_as_written(page, tmp_path, monkeypatch):
    runnable = [code for why, code in blocks(page) if why is None]
    if any("data/drive" in code for code in runnable):
        if not DRIVE.is_dir():
            pytest.skip("the shared DRIVE folder is not beside the checkout")
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "drive").symlink_to(DRIVE.resolve())
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__doc_example__"}
    for n, code in enumerate(runnable):
        exec(compile(code, f"{_name(page)} (python block {n + 1})", "exec"), namespace)
