"""Label real pixels: a project folder that asks a person, remembers every answer and predicts masks.

See :class:`~skal_seg.labeling.project.LabelingProject` (Python) and the
``skal-seg init|query|label|import|export|status|predict`` commands.
"""

from skal_seg.labeling.project import ImportReport, ImportValidationError, LabelingProject
from skal_seg.labeling.store import RecordConflictError, UnknownRecordError

__all__ = ["LabelingProject", "ImportReport", "ImportValidationError", "RecordConflictError", "UnknownRecordError"]
