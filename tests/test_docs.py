"""The documentation site builds with ``mkdocs build --strict`` (warnings are errors).

Strict mode fails on broken links between pages, unresolved cross-references
(``[TwoStageQuery][skal_seg.query.TwoStageQuery]``), docstrings mkdocstrings
cannot render, and example files the pages include that do not exist.
"""

import html
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    site = tmp_path / "site"
    # The API reference is generated from the docstrings, and example scripts are included verbatim.
    query_page = (site / "reference" / "query" / "index.html").read_text()
    assert "TwoStageQuery" in query_page and "local_budget" in query_page
    modal_page = html.unescape(re.sub(r"<[^>]+>", "", (site / "guide" / "modal" / "index.html").read_text()))
    assert "def main(argv=None):" in modal_page  # examples/modal_loop.py, included by pymdownx.snippets
    for page in ("getting-started", "method", "gpu", "benchmarks", "performance",
                 "guide/pipeline", "guide/samplers"):
        assert (site / page / "index.html").is_file(), page
