"""Uncertainty Herding: greedy maximisation of uncertainty-weighted generalized coverage.

Bae, Oliveira and Sutherland, "Uncertainty Herding: One Active Learning Method
for All Label Budgets" (ICLR 2025). With a classifier's uncertainty ``u_i``
of each candidate row, the uncertainty coverage of a selection ``S`` (with the
labeled rows ``L``) is::

    UC(S) = mean_i u_i max_{j in S or L} k(x_i, x_j)

MaxHerding's coverage (:mod:`skal_seg.herding`) with each row weighted by how
uncertain the classifier is there: monotone and submodular for ``u_i >= 0``,
maximised by the same greedy on the same kernel machinery. Two settings move
the method between MaxHerding and uncertainty sampling as labels accumulate:

* temperature: uncertainties come from ``softmax(logits / T)``; ``T`` is
  chosen on held-out labels by expected calibration error. An overconfident
  classifier trained on few labels gets a large ``T``, near-uniform
  uncertainties, and UHerding behaves like MaxHerding;
* bandwidth ``"labeled"``: the RBF bandwidth is the smallest distance between
  two labeled rows, which shrinks as labels accumulate; as the kernel tends
  to the identity, the gain of a row tends to its own uncertainty, and
  UHerding behaves like uncertainty sampling.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Union

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.base import clone
from sklearn.utils import check_random_state

from skal_seg._checks import check_budget, check_positive_or_word
from skal_seg._validation import check_features, check_probabilities, is_fitted, learner_estimator
from skal_seg.herding import KernelLike, MaxHerdingSampler, auto_bandwidth, labeled_or_training, rbf_kernel
from skal_seg.uncertainty import entropy_score

UNCERTAINTIES = ("margin", "entropy")

#: Temperatures tried by :func:`fit_temperature` (those of the official code: 1.0 to 19.9 by 0.1).
TEMPERATURE_GRID = np.round(np.arange(1.0, 20.0, 0.1), 1)


def temper(proba, temperature: float) -> np.ndarray:
    """Probabilities at a temperature: ``softmax(log(proba) / T)``.

    Equal to ``softmax(logits / T)`` for ``proba = softmax(logits)``, so
    temperature scaling needs only ``predict_proba``.

    Parameters
    ----------
    proba : array-like of shape (n, n_classes)
    temperature : float
        Positive; 1 returns the probabilities unchanged, larger flattens them.

    Returns
    -------
    ndarray of shape (n, n_classes), float64
    """
    proba = check_probabilities(proba, "proba", ndim=2)
    if not isinstance(temperature, numbers.Real) or not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    with np.errstate(divide="ignore"):
        z = np.log(proba) / temperature  # a zero probability stays zero (-inf)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def margin_uncertainty(proba) -> np.ndarray:
    """``1 - (p_top1 - p_top2)``, in [0, 1] (1: the two likeliest classes tie).

    Parameters
    ----------
    proba : array-like of shape (n, n_classes)

    Returns
    -------
    ndarray of shape (n,), float64
        1 for every row when there is a single class.
    """
    proba = check_probabilities(proba, "proba", ndim=2)
    if proba.shape[1] < 2:
        return np.ones(len(proba))
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def expected_calibration_error(proba, y, n_bins: int | None = None) -> float:
    """Expected calibration error of the top-class confidence.

    Parameters
    ----------
    proba : array-like of shape (n, n_classes)
    y : array-like of shape (n,)
        Column index of the true class of each row.
    n_bins : int, optional
        Equal-width confidence bins on (0, 1]; default ``n_classes`` (as the
        official UHerding code).

    Returns
    -------
    float
        ``sum_b (|B_b| / n) |accuracy(B_b) - mean confidence(B_b)|``.
    """
    proba = check_probabilities(proba, "proba", ndim=2)
    y = np.asarray(y)
    if y.shape != (len(proba),):
        raise ValueError(f"y must have shape ({len(proba)},), got {y.shape}")
    n_bins = proba.shape[1] if n_bins is None else n_bins
    conf, pred = proba.max(1), proba.argmax(1)
    correct = (pred == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        m = bins == b
        ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def fit_temperature(estimator, X, y, holdout: float = 0.3, temperatures=TEMPERATURE_GRID, random_state=None) -> float:
    """Temperature minimising the calibration error on held-out labels (the paper's rule).

    A clone of ``estimator`` is fitted on ``1 - holdout`` of the labeled rows;
    the temperature of ``temperatures`` with the lowest
    :func:`expected_calibration_error` of its tempered predictions on the
    other rows is returned (the first one on ties).

    Parameters
    ----------
    estimator : scikit-learn classifier
        Cloned (unfitted); a modAL learner's ``estimator`` is used.
    X : array-like of shape (n_labeled, D)
    y : array-like of shape (n_labeled,)
    holdout : float in (0, 1), default=0.3
    temperatures : array-like of float, default=TEMPERATURE_GRID
    random_state : int, RandomState or None
        Seeds the split (and the clone's ``random_state``, when it has one).

    Returns
    -------
    float
        1.0 when the labels cannot be split into a held-out part and a fitting
        part with at least two classes.
    """
    X = check_features(X, "X_labeled")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise ValueError(f"y_labeled must have shape ({len(X)},) to match X_labeled, got {y.shape}")
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout!r}")
    rng = check_random_state(random_state)
    n_val = int(len(X) * holdout)
    order = rng.permutation(len(X))
    val, fit = order[:n_val], order[n_val:]
    if n_val == 0 or len(np.unique(y[fit])) < 2:
        return 1.0
    est = clone(learner_estimator(estimator))
    if "random_state" in est.get_params():
        est.set_params(random_state=int(rng.randint(0, 2**31 - 1)))
    est.fit(X[fit], y[fit])
    # Held-out rows of classes the clone never saw are kept: they count as errors, as they would.
    proba = est.predict_proba(X[val])
    col = {c: i for i, c in enumerate(est.classes_)}
    y_col = np.array([col.get(c, -1) for c in y[val]])
    errors = [expected_calibration_error(temper(proba, float(t)), y_col) for t in temperatures]
    return float(np.asarray(temperatures)[int(np.argmin(errors))])


class UncertaintyHerdingSampler(MaxHerdingSampler):
    """Select rows by greedy uncertainty-coverage maximisation (UHerding).

    A :class:`~skal_seg.herding.MaxHerdingSampler` whose coverage weights
    each row by the classifier's (temperature-scaled) uncertainty there. With
    uniform uncertainty (a classifier not fitted yet, or ``select`` without
    ``uncertainty``) it picks exactly what MaxHerding picks with the same
    kernel and bandwidth.

    Parameters
    ----------
    uncertainty : {"margin", "entropy"}, default="margin"
        ``"margin"``: ``1 - (p_top1 - p_top2)`` (the paper's choice);
        ``"entropy"``: predictive entropy in nats.
    temperature : "auto" or float, default="auto"
        ``"auto"``: :func:`fit_temperature` on the labeled rows (a clone of
        the classifier fitted on 70% of them, ECE on the rest), 1.0 when
        no labels are given; a number: that temperature.
    kernel : "rbf" or callable, default="rbf"
        As :class:`~skal_seg.herding.MaxHerdingSampler`.
    bandwidth : "labeled", "auto" or float, default="labeled"
        ``"labeled"``: the smallest non-zero distance between two labeled
        rows (the paper's radius, shrinking as labels accumulate); ``"auto"``
        (also the fallback of ``"labeled"`` with fewer than two distinct
        labeled rows): MaxHerding's rule, 2 x the median pairwise distance; a number.
    max_memory_mb, lazy_batch, device, random_state
        As :class:`~skal_seg.herding.MaxHerdingSampler`; ``random_state``
        also seeds the temperature's held-out split.

    Attributes
    ----------
    bandwidth_ : float
        Bandwidth used by the last call.
    temperature_ : float
        Temperature used by the last :meth:`query` (nan when it used uniform weights).
    uncertainty_ : ndarray of shape (n_pool,) or None
        Row weights of the last call (None: uniform).
    gains_ : ndarray of shape (n_selected,)
        Uncertainty-coverage gain of each pick, in selection order.
    """

    def __init__(
        self,
        uncertainty: str = "margin",
        temperature: Union[str, float] = "auto",
        kernel: KernelLike = "rbf",
        bandwidth: Union[str, float] = "labeled",
        max_memory_mb: Union[float, str] = 2048,
        lazy_batch: int = 32,
        device: str = "cpu",
        random_state=None,
    ):
        super().__init__(kernel=kernel, bandwidth=bandwidth, max_memory_mb=max_memory_mb,
                         lazy_batch=lazy_batch, device=device, random_state=random_state)
        self.uncertainty = uncertainty
        self.temperature = temperature

    def _kernel_fn(self, X: np.ndarray, X_labeled: np.ndarray | None = None):
        """The kernel, with the ``"labeled"`` bandwidth resolved from ``X_labeled``."""
        if self.bandwidth != "labeled" or callable(self.kernel):
            return super()._kernel_fn(X)
        distances = pdist(np.asarray(X_labeled, dtype=np.float64)) if X_labeled is not None else np.empty(0)
        distances = distances[distances > 0]
        bw = float(distances.min()) if distances.size else auto_bandwidth(X, self.random_state)
        self.bandwidth_ = bw
        return lambda A, B: rbf_kernel(A, B, bw)

    def select(self, X, n_instances: int, uncertainty=None, X_labeled=None) -> np.ndarray:
        """Greedily pick ``n_instances`` rows of ``X`` maximising uncertainty coverage.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Candidate rows; coverage is measured over these rows.
        n_instances : int
            How many rows to pick, at most ``n_samples``.
        uncertainty : array-like of shape (n_samples,), optional
            Non-negative weight of each row; None (or all zero, with a
            warning) weighs rows uniformly: MaxHerding.
        X_labeled : array-like of shape (n_labeled, n_features), optional
            Already-labeled rows: coverage starts from them, and they set
            the ``"labeled"`` bandwidth.

        Returns
        -------
        ndarray of shape (n_instances,), int64
            Row indices of ``X`` in selection order, unique.

        Raises
        ------
        ValueError
            No rows, ``n_instances`` larger than the number of rows or
            negative, uncertainties of the wrong shape, negative or not
            finite, bad features or settings.
        """
        check_positive_or_word(self.bandwidth, "bandwidth", ("labeled", "auto"))
        if self.temperature != "auto":
            check_positive_or_word(self.temperature, "temperature")
        X = check_features(X, "X", allow_empty=True)
        if len(X) == 0:
            raise ValueError("X has no rows: there is nothing to select from")
        n_instances = check_budget(n_instances, available=len(X))
        weights = None
        if uncertainty is not None:
            weights = np.asarray(uncertainty, dtype=np.float64)
            if weights.shape != (len(X),):
                raise ValueError(f"uncertainty must have shape ({len(X)},) to match X, got {weights.shape}")
            if not np.all(np.isfinite(weights)) or (weights < 0).any():
                raise ValueError("uncertainty must be finite and non-negative")
            if not weights.any():
                warnings.warn("every uncertainty is 0; weighing rows uniformly (MaxHerding)", UserWarning, stacklevel=2)
                weights = None
        self.uncertainty_ = weights
        return self._herd(X, n_instances, X_labeled, weights)

    def uncertainty_scores(self, classifier, X, temperature: float = 1.0) -> np.ndarray:
        """This sampler's uncertainty of rows of ``X`` at a temperature.

        Parameters
        ----------
        classifier : fitted classifier with ``predict_proba``
        X : array-like of shape (n, D)
        temperature : float, default=1.0

        Returns
        -------
        ndarray of shape (n,), float64, non-negative
        """
        if self.uncertainty not in UNCERTAINTIES:
            raise ValueError(f"unknown uncertainty {self.uncertainty!r}; use one of {UNCERTAINTIES}")
        X = check_features(X, "X")
        proba = temper(classifier.predict_proba(X), temperature)
        return margin_uncertainty(proba) if self.uncertainty == "margin" else entropy_score(proba)

    def query(self, classifier, X_pool, n_instances: int = 1, X_labeled=None, y_labeled=None) -> np.ndarray:
        """Rows of ``X_pool`` to label next: UHerding with ``classifier``'s uncertainty.

        Parameters
        ----------
        classifier : estimator, modAL learner or None
            Gives the uncertainties when fitted; otherwise rows are weighed
            uniformly (MaxHerding). A modAL learner's ``X_training`` and
            ``y_training`` stand in for ``X_labeled`` and ``y_labeled``.
        X_pool : array-like of shape (n_pool, D)
        n_instances : int, default=1
        X_labeled : array-like of shape (n_labeled, D), optional
            Labeled rows: coverage is conditioned on them; they set the
            ``"labeled"`` bandwidth and, with ``y_labeled``, the ``"auto"`` temperature.
        y_labeled : array-like of shape (n_labeled,), optional

        Returns
        -------
        ndarray of shape (n_instances,), int64

        Raises
        ------
        ValueError
            As :meth:`select`; a bad temperature.
        """
        X_labeled, y_labeled = labeled_or_training(classifier, X_labeled, y_labeled)
        self.temperature_ = float("nan")
        uncertainty = None
        if is_fitted(classifier):
            if self.temperature == "auto":
                self.temperature_ = (1.0 if X_labeled is None or y_labeled is None
                                     else fit_temperature(classifier, X_labeled, y_labeled, random_state=self.random_state))
            else:
                self.temperature_ = self.temperature
            uncertainty = self.uncertainty_scores(classifier, X_pool, self.temperature_)
        return self.select(X_pool, n_instances, uncertainty=uncertainty, X_labeled=X_labeled)

    def __call__(self, classifier, X_pool, n_instances: int = 1, X_labeled=None, y_labeled=None, **kwargs):
        """modAL query strategy: ``(indices, gains)`` of UHerding over ``X_pool``."""
        idx = self.query(classifier, X_pool, n_instances, X_labeled=X_labeled, y_labeled=y_labeled)
        return idx, self.gains_
