"""Segmentation quality: confusion matrix, per-class IoU and mIoU."""

from __future__ import annotations

import numpy as np

from skal_seg.data import IGNORE_INDEX


def confusion_matrix(y_true, y_pred, n_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Pixel confusion matrix, rows = true class, columns = predicted class.

    Parameters
    ----------
    y_true, y_pred : array-like of int, same shape (any)
        Ground truth (``ignore_index`` pixels are skipped) and predictions.
    n_classes : int

    Returns
    -------
    ndarray of shape (n_classes, n_classes), int64

    Raises
    ------
    ValueError
        Shapes differ, or values outside ``[0, n_classes)`` (other than ignore).
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} values but y_pred has {y_pred.size}")
    keep = y_true != ignore_index
    t, p = y_true[keep].astype(np.int64), y_pred[keep].astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= n_classes or p.min() < 0 or p.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}) or equal {ignore_index}")
    return np.bincount(t * n_classes + p, minlength=n_classes**2).reshape(n_classes, n_classes)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    """IoU of each class, ``TP / (TP + FP + FN)``.

    Parameters
    ----------
    cm : ndarray of shape (n_classes, n_classes)
        Confusion matrix, rows = truth (see :func:`confusion_matrix`).

    Returns
    -------
    ndarray of shape (n_classes,), float64
        NaN for a class absent from both truth and prediction.
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(cm: np.ndarray) -> float:
    """Mean IoU over the classes that occur (in truth or prediction).

    Parameters
    ----------
    cm : ndarray of shape (n_classes, n_classes)

    Returns
    -------
    float
        NaN when the matrix is empty.
    """
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan")


def classes_present(labels, n_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Which classes occur in label maps (ignore pixels skipped).

    Parameters
    ----------
    labels : array-like of int, any shape
        Class ids, ``ignore_index`` for "no label".
    n_classes : int

    Returns
    -------
    ndarray of shape (n_classes,), bool
    """
    labels = np.asarray(labels).ravel()
    return np.bincount(labels[labels != ignore_index].astype(np.int64), minlength=n_classes)[:n_classes] > 0


def _names(names, limit: int = 12) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def miou_scope(class_names, present) -> str:
    """What a table's mIoU is the mean of, in words.

    :func:`mean_iou` averages the classes that occur in the truth or in the
    prediction: every class of the evaluation labels, and a class absent
    from them only where it is predicted (its IoU is then 0).

    Parameters
    ----------
    class_names : sequence of str
        All classes, in id order.
    present : array-like of bool, shape (n_classes,)
        Which occur in the evaluation labels (:func:`classes_present`).

    Returns
    -------
    str
        ``"mIoU over the 2 classes background, vessel"``, or, when some
        class never occurs in the evaluation labels, a sentence saying which
        and how they count.
    """
    present = np.asarray(present, dtype=bool)
    names = list(class_names)
    shown = [n for n, p in zip(names, present) if p]
    absent = [n for n, p in zip(names, present) if not p]
    if not absent:
        return f"mIoU over the {len(names)} classes {_names(names)}"
    one = len(absent) == 1
    return (f"mIoU over the {len(shown)} of {len(names)} classes that occur in the evaluation labels "
            f"({_names(shown)}); {_names(absent)} never occur{'s' if one else ''} there and "
            f"count{'s' if one else ''} only in a round that predicts {'it' if one else 'them'} (IoU 0)")
