"""modAL-python 0.4.2.1 on scikit-learn 1.6 / 1.7 without a FutureWarning on every ``teach``.

modAL's ``ActiveLearner`` validates each ``teach`` (and ``fit``) with
``sklearn.utils.check_X_y(..., force_all_finite=...)``. scikit-learn 1.6
renamed that keyword ``ensure_all_finite`` and warns ("'force_all_finite' was
renamed to 'ensure_all_finite' in 1.6 ...", a FutureWarning) on each such call,
so a user's active-learning loop printed it every round. It is modAL's code,
not the user's and not ours, so the user can do nothing about it.

The fix here is the narrowest one found: modAL's learners module gets a
``check_X_y`` that passes the same value under the new name, which is exactly
what scikit-learn does with the old one, so nothing changes but the warning,
and nothing is hidden. A warnings filter was the alternative and is worse on
both counts: scikit-learn raises the warning from ``sklearn.utils.deprecation``,
so a filter cannot be limited to modAL's calls (it would also silence the
user's own uses of the old name), and a filter installed at import is undone
when the import happens inside ``warnings.catch_warnings()`` (pytest collects
test modules that way, so users' test runs would show it again).

Applied once, when the first of the package's estimator modules is imported
(they all import :mod:`skal_seg._validation`, which applies it); calls without
the old keyword pass through unchanged, so a modAL release that fixes its
calls is unaffected.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

_MARK = "_skal_seg_renames_force_all_finite"


def _renaming(check_X_y: Callable) -> Callable:
    """``check_X_y`` taking modAL's ``force_all_finite=`` under its scikit-learn >= 1.6 name."""

    @functools.wraps(check_X_y)
    def check(*args, **kwargs):
        if "force_all_finite" in kwargs and "ensure_all_finite" not in kwargs:
            kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
        return check_X_y(*args, **kwargs)

    setattr(check, _MARK, True)
    return check


def patch_modal() -> bool:
    """Give modAL's learners the renaming ``check_X_y`` (idempotent).

    Returns
    -------
    bool
        True when modAL's learners now use it; False when modAL is not
        installed, or scikit-learn's ``check_X_y`` has no ``ensure_all_finite``.
    """
    try:
        from modAL.models import learners
    except ImportError:
        return False
    current = getattr(learners, "check_X_y", None)
    if current is None:
        return False
    if getattr(current, _MARK, False):
        return True
    if "ensure_all_finite" not in inspect.signature(current).parameters:
        return False
    learners.check_X_y = _renaming(current)
    return True
