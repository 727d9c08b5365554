"""Label real pixels: a project folder that asks a person, remembers every answer and predicts masks.

See :class:`~skal_seg.labeling.project.LabelingProject` (Python) and the
``skal-seg init|query|label|import|export|status|predict`` commands.
"""

from importlib import import_module
from typing import Any

# Imported on first use (PEP 562): the command line imports skal_seg.labeling.cli to build its parser,
# which must not pay for the project's modules before a command runs.
_LAZY = {"LabelingProject": "skal_seg.labeling.project"}
_LAZY.update({name: "skal_seg.labeling.importing" for name in ("ImportReport", "ImportValidationError")})
_LAZY.update({name: "skal_seg.labeling.store" for name in ("RecordConflictError", "UnknownRecordError")})

__all__ = ["LabelingProject", "ImportReport", "ImportValidationError", "RecordConflictError", "UnknownRecordError"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skal_seg.labeling' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
