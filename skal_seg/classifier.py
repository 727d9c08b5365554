"""A scikit-learn classifier around a small PyTorch MLP (the segmentation head).

:class:`TorchMLPClassifier` classifies per-pixel feature vectors. Its default
architecture follows the pixel classifier of diffusion-feature segmentation
(Baranchuk et al.): ``Linear(D, 128) - ReLU - BatchNorm1d(128) -
Linear(128, 32) - ReLU - BatchNorm1d(32) - Linear(32, n_classes)``, trained
with AdamW on the cross-entropy.

It is built for the two regimes of pixel-level active learning:

* tiny labeled sets (tens of pixels, some classes with a single example):
  training runs for at least ``min_steps`` optimizer steps, however few the
  rows, and a batch of one row (which BatchNorm cannot normalise) never
  occurs;
* large sets (hundreds of thousands of pixels): the data live in one tensor
  on the device, epochs are index permutations, and prediction runs in
  chunks of ``predict_batch_size`` rows.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from torch import nn
from tqdm.auto import tqdm

from skal_seg._threads import small_op_threads
from skal_seg._checks import check_auto_or_positive_int
from skal_seg._validation import all_finite, check_features, readonly_tensor

#: Least seconds between two redraws of the training progress bar.
PROGRESS_INTERVAL_S = 0.5

__all__ = ["TorchMLPClassifier", "MIN_VALIDATION_SAMPLES"]

#: Early stopping holds out a validation split only when it would contain at
#: least this many rows; below that the split is too noisy to steer training
#: and the rows are worth more as training data, so all rows are trained on.
MIN_VALIDATION_SAMPLES = 50

# predict_batch_size="auto" on CPU: float32 input chunks of this size (with the
# first hidden layer's output) fit a CPU's last-level cache; 65536-row chunks
# at D=1056 (277 MB) made every layer stream from memory.
_CPU_PREDICT_CHUNK_BYTES = 8 * 2**20


def _resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; otherwise ``torch.device(device)``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto' or a torch device, got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return dev


def _build_mlp(
    n_features: int, hidden_layer_sizes: tuple[int, ...], n_classes: int, dropout: float
) -> nn.Sequential:
    """``[Linear - ReLU - BatchNorm1d (- Dropout)] * len(hidden) + Linear``."""
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden_layer_sizes:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.BatchNorm1d(h)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


def _make_adamw(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one kernel per step, less Python overhead) where torch supports it."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def _to_tensor(chunk: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float32 tensor on ``device`` (copies read-only or non-contiguous input)."""
    arr = np.asarray(chunk, dtype=np.float32)
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    return torch.from_numpy(arr).to(device)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multi-layer perceptron classifier in PyTorch, with BatchNorm and AdamW.

    Each hidden layer is ``Linear - ReLU - BatchNorm1d`` (followed by
    ``Dropout`` when ``dropout > 0``); the output layer is a ``Linear`` to one
    logit per class, trained with (optionally class-weighted) cross-entropy.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(128, 32)
        Widths of the hidden layers. An int means one hidden layer; an empty
        tuple gives a linear (softmax regression) model.
    dropout : float, default=0.0
        Dropout probability after each hidden block, in ``[0, 1)``.
    learning_rate : float, default=1e-3
        AdamW learning rate (constant), ``> 0``.
    weight_decay : float, default=1e-4
        AdamW decoupled weight decay, ``>= 0``.
    max_epochs : int, default=20
        Number of passes over the training rows, ``>= 1``. Training may run
        more epochs to reach ``min_steps``, or fewer when early stopping
        stops it.
    batch_size : int, default=256
        Rows per optimizer step, ``>= 2``; a set smaller than this is trained
        full-batch. When an epoch would end with a batch of one row (which
        BatchNorm cannot normalise) that row joins the previous batch.
    min_steps : int, default=500
        Minimum number of optimizer steps, ``>= 0``. With 30 labeled rows one
        epoch is a single step, so ``max_epochs`` alone would barely move the
        weights; the number of epochs is raised to
        ``ceil(min_steps / steps_per_epoch)`` when that is larger.
    early_stopping : bool, default=False
        Hold out a random (not stratified) ``validation_fraction`` of the rows
        and stop when the validation loss has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, restoring the best weights. Used only
        when the split would hold at least :data:`MIN_VALIDATION_SAMPLES`
        (50) rows and leave at least 2 for training; otherwise every row is
        trained on for the full schedule. Never stops before ``min_steps``.
    validation_fraction : float, default=0.1
        Fraction of rows held out for early stopping, in ``(0, 1)``.
    n_iter_no_change : int, default=5
        Epochs without improvement tolerated by early stopping, ``>= 1``.
    tol : float, default=1e-4
        Minimum decrease of the validation loss that counts as an improvement.
    class_weight : None, "balanced" or dict, default=None
        Weights of the cross-entropy per class: ``None`` for uniform,
        ``"balanced"`` for ``n_samples / (n_classes * bincount(y))``, or a
        dict ``{label: weight}`` (missing labels weigh 1).
    device : str or torch.device, default="auto"
        Where to train: ``"auto"`` is CUDA when available, else CPU.
    predict_batch_size : int or "auto", default="auto"
        Rows per forward pass in :meth:`predict_proba` (and in the
        validation loss), so millions of rows fit in memory. ``"auto"`` on a
        GPU is 65536 rows; on a CPU it is the rows of about 8 MiB of float32
        input (1985 rows at 1056 features, between 256 and 65536), so that
        the chunk and its first hidden layer stay in the CPU cache: on
        262,144 CamVid rows (D = 1056) this predicted in 0.91 s against
        1.69 s with 65536-row chunks (``benchmarks/bench_predict.py``).
    ignore_index : scalar or None, default=None
        A label that means "no class" (CamVid's 255): rows carrying it are
        dropped in :meth:`fit` and never become a class. ``None`` (the
        scikit-learn convention) treats every label as a class.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, dropout and the validation
        split. An int gives identical results across fits on CPU (CUDA
        kernels may be non-deterministic). The global torch RNG state is
        restored after fitting.
    verbose : bool, default=False
        Print the training (and validation) loss after each epoch.
    progress : bool, default=False
        Show a tqdm progress bar over epochs, redrawn at most every
        :data:`PROGRESS_INTERVAL_S` seconds (a fit of thousands of short
        epochs stays a few lines of terminal output, not hundreds of KB).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Sorted class labels seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when ``X`` in ``fit`` was a DataFrame with string names.
    model_ : torch.nn.Sequential or None
        The trained network (in eval mode), or ``None`` when ``y`` held a
        single class (then every prediction is that class).
    device_ : torch.device
        The device the network was trained on.
    loss_curve_ : list of float
        Mean training loss of each epoch.
    validation_loss_curve_ : list of float or None
        Validation loss after each epoch; ``None`` without a validation split.
    best_validation_loss_ : float or None
        Lowest validation loss (its weights are kept); ``None`` without split.
    n_iter_ : int
        Number of epochs run.
    n_steps_ : int
        Number of optimizer steps taken.

    Examples
    --------
    >>> import numpy as np
    >>> from skal_seg.classifier import TorchMLPClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(-2, 1, (50, 4)), rng.normal(2, 1, (50, 4))]
    >>> y = np.r_[np.zeros(50, int), np.ones(50, int)]
    >>> clf = TorchMLPClassifier(max_epochs=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X).shape
    (100, 2)
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] | int = (128, 32),
        dropout: float = 0.0,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 20,
        batch_size: int = 256,
        min_steps: int = 500,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 5,
        tol: float = 1e-4,
        class_weight: None | str | Mapping[Any, float] = None,
        device: str | torch.device = "auto",
        predict_batch_size: int | str = "auto",
        ignore_index: Any = None,
        random_state: None | int | np.random.RandomState = None,
        verbose: bool = False,
        progress: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.min_steps = min_steps
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.device = device
        self.predict_batch_size = predict_batch_size
        self.ignore_index = ignore_index
        self.random_state = random_state
        self.verbose = verbose
        self.progress = progress

    # ------------------------------------------------------------------ checks
    def _validate_params(self) -> tuple[tuple[int, ...], torch.device]:
        def _int(name: str, low: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")

        def _real(name: str, low: float, high: float, low_open: bool, high_open: bool) -> None:
            v = getattr(self, name)
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            if ok:
                ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
            if not ok:
                lb, rb = "(" if low_open else "[", ")" if high_open else "]"
                raise ValueError(f"{name} must be a real number in {lb}{low}, {high}{rb}, got {v!r}")

        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ValueError(
                f"hidden_layer_sizes must be a tuple of positive ints, got {self.hidden_layer_sizes!r}"
            ) from None
        if not all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise ValueError(
                f"hidden_layer_sizes must be a tuple of positive ints, got {self.hidden_layer_sizes!r}"
            )
        _real("dropout", 0.0, 1.0, False, True)
        _real("learning_rate", 0.0, math.inf, True, True)
        _real("weight_decay", 0.0, math.inf, False, True)
        _int("max_epochs", 1)
        _int("batch_size", 2)
        _int("min_steps", 0)
        _real("validation_fraction", 0.0, 1.0, True, True)
        _int("n_iter_no_change", 1)
        _real("tol", 0.0, math.inf, False, True)
        check_auto_or_positive_int(self.predict_batch_size, "predict_batch_size")
        if np.ndim(self.ignore_index) != 0:
            raise ValueError(f"ignore_index must be None or a single label, got {self.ignore_index!r}")
        cw = self.class_weight
        if not (cw is None or (isinstance(cw, str) and cw == "balanced") or isinstance(cw, Mapping)):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        return tuple(int(h) for h in hidden), _resolve_device(self.device)

    def _check_X(self, X, reset: bool):
        """Validated X; float16 ndarrays are kept as is (cast per batch later)."""
        if not reset and isinstance(X, np.ndarray) and X.dtype == np.float16:
            if X.ndim != 2:
                raise ValueError(f"Expected a 2D array for X, got an array of shape {X.shape}")
            if X.shape[0] == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
                )
            Xv = X
        else:
            Xv = check_features(X)
        # Feature-name and feature-count bookkeeping (n_features_in_,
        # feature_names_in_), sklearn's standard messages on mismatch.
        validate_data(self, X, reset=reset, skip_check_array=True)
        return Xv

    # --------------------------------------------------------------------- fit
    def fit(self, X, y) -> TorchMLPClassifier:
        """Train the network on ``X`` and ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric, finite features; float32 and float64 are kept, other
            dtypes become float32 (the network computes in float32).
        y : array-like of shape (n_samples,)
            Class labels of any type ``np.unique`` sorts (ints, strings...).
            A single class is allowed: nothing is trained and every
            prediction is that class. Rows labeled ``ignore_index`` are
            dropped (``n_features_in_`` still comes from every row).

        Returns
        -------
        self : TorchMLPClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            Invalid parameters, ``X`` not 2-D, with NaN/inf or no rows, ``y``
            missing, continuous or of a different length than ``X``, every
            row labeled ``ignore_index``, CUDA requested but unavailable.
        """
        hidden, device = self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        X = self._check_X(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        if self.ignore_index is not None:
            keep = ~_equals(y, self.ignore_index)
            if not keep.any():
                raise ValueError(
                    f"every label is ignore_index={self.ignore_index!r}: no row to learn from; "
                    "label at least one row with a class"
                )
            if not keep.all():
                X, y = X[keep], y[keep]
        check_classification_targets(y)

        encoder = LabelEncoder()
        y_enc = encoder.fit_transform(y)
        self.classes_ = encoder.classes_
        n_classes = len(self.classes_)
        self.device_ = device
        self.loss_curve_: list[float] = []
        self.validation_loss_curve_: list[float] | None = None
        self.best_validation_loss_: float | None = None
        self.n_iter_ = 0
        self.n_steps_ = 0
        if n_classes == 1:
            self.model_ = None
            return self

        if self.class_weight is None:
            weights = None
        else:
            weights = compute_class_weight(
                self.class_weight, classes=self.classes_, y=y
            ).astype(np.float32)

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        # Training is a loop of small ops: one thread each, not a collapse beside a busy process (_threads.py).
        with torch.random.fork_rng(devices=fork_devices), small_op_threads():
            torch.manual_seed(seed)
            self._fit_seeded(X, y_enc, n_classes, hidden, device, weights, rng)
        return self

    def _fit_seeded(self, X, y_enc, n_classes, hidden, device, weights, rng) -> None:
        n = X.shape[0]
        model = _build_mlp(X.shape[1], hidden, n_classes, float(self.dropout)).to(device)
        self.model_ = model

        # Random (stratification-free) validation split, only with enough rows.
        n_val = int(math.floor(self.validation_fraction * n)) if self.early_stopping else 0
        use_val = n_val >= MIN_VALIDATION_SAMPLES and n - n_val >= 2
        if use_val:
            perm = rng.permutation(n)
            val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            X_val_t = _to_tensor(X[val_idx], device)
            y_val_t = torch.as_tensor(y_enc[val_idx], dtype=torch.long, device=device)
            X_t = _to_tensor(X[train_idx], device)
            y_t = torch.as_tensor(y_enc[train_idx], dtype=torch.long, device=device)
            self.validation_loss_curve_ = []
        else:
            X_t = _to_tensor(X, device)
            y_t = torch.as_tensor(y_enc, dtype=torch.long, device=device)
        n_train = X_t.shape[0]

        weight_t = None if weights is None else torch.as_tensor(weights, device=device)
        loss_fn = nn.CrossEntropyLoss(weight=weight_t)
        optimizer = _make_adamw(model, float(self.learning_rate), float(self.weight_decay))

        bs = min(int(self.batch_size), n_train)
        n_full, rest = divmod(n_train, bs)
        steps_per_epoch = n_full + (1 if rest > 1 else 0)  # a 1-row tail joins the last batch
        n_epochs = max(int(self.max_epochs), math.ceil(int(self.min_steps) / steps_per_epoch))

        best_loss, best_state, no_improve = math.inf, None, 0
        bar = tqdm(range(n_epochs), desc=type(self).__name__, disable=not self.progress,
                   mininterval=PROGRESS_INTERVAL_S)
        for epoch in bar:
            model.train()
            perm_t = torch.randperm(n_train, device=device)
            batches = list(torch.split(perm_t, bs))
            if len(batches) > 1 and batches[-1].numel() == 1:
                batches[-2:] = [torch.cat(batches[-2:])]
            total = torch.zeros((), device=device)
            for idx in batches:
                logits = model(X_t[idx])
                loss = loss_fn(logits, y_t[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * idx.numel()
            self.n_steps_ += len(batches)
            self.n_iter_ = epoch + 1
            train_loss = float(total.item()) / n_train
            self.loss_curve_.append(train_loss)
            msg = {"loss": f"{train_loss:.4f}"}

            if use_val:
                model.eval()
                with torch.no_grad():
                    val_logits = self._forward_batched(X_val_t)
                    val_loss = float(loss_fn(val_logits, y_val_t).item())
                self.validation_loss_curve_.append(val_loss)
                msg["val_loss"] = f"{val_loss:.4f}"
                if val_loss < best_loss - float(self.tol):
                    no_improve = 0
                else:
                    no_improve += 1
                if val_loss < best_loss:
                    best_loss = val_loss
                    best_state = copy.deepcopy(model.state_dict())
            if self.verbose:
                print(f"epoch {epoch + 1}/{n_epochs}: " + ", ".join(f"{k}={v}" for k, v in msg.items()))
            if self.progress:  # shown at the bar's next (throttled) redraw; refresh=True would redraw every epoch
                bar.set_postfix(msg, refresh=False)
            if use_val and no_improve >= self.n_iter_no_change and self.n_steps_ >= self.min_steps:
                break
        bar.close()

        if use_val and best_state is not None:
            model.load_state_dict(best_state)
            self.best_validation_loss_ = best_loss
        model.eval()

    # ----------------------------------------------------------------- predict
    def _forward_batched(self, X_t: torch.Tensor) -> torch.Tensor:
        """Logits of a tensor already on the device, ``predict_batch_size`` rows at a time."""
        bs = self._predict_rows(X_t.device)
        return torch.cat([self.model_(X_t[i : i + bs]) for i in range(0, X_t.shape[0], bs)])

    def _predict_rows(self, device: torch.device) -> int:
        """``predict_batch_size`` resolved for ``device`` (see the class docs)."""
        rows = check_auto_or_positive_int(self.predict_batch_size, "predict_batch_size")
        if rows != "auto":
            return rows
        if device.type != "cpu":
            return 65536
        return int(np.clip(_CPU_PREDICT_CHUNK_BYTES // (4 * self.n_features_in_), 256, 65536))

    def _inference_device(self) -> torch.device:
        dev = self.device_
        if dev.type == "cuda" and not torch.cuda.is_available():
            dev = torch.device("cpu")
        return dev

    def _logits(self, X) -> np.ndarray | None:
        """float64 logits (n, n_classes), or None for a single-class fit."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        if self.model_ is None:
            return None
        dev = self._inference_device()
        model = self.model_.to(dev)
        model.eval()
        bs = self._predict_rows(dev)
        out = np.empty((X.shape[0], len(self.classes_)), dtype=np.float64)
        with torch.inference_mode(), small_op_threads():  # cache-sized chunks: small ops (_threads.py)
            for start in range(0, X.shape[0], bs):
                chunk = X[start : start + bs]
                if chunk.dtype == np.float16:  # widened by torch: several times faster than numpy's astype
                    if not all_finite(chunk):
                        raise ValueError("Input X contains NaN or infinity.")
                    X_t = readonly_tensor(np.ascontiguousarray(chunk)).to(dev, torch.float32)
                else:
                    X_t = _to_tensor(chunk, dev)
                out[start : start + bs] = model(X_t).double().cpu().numpy()
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the logits, network in eval mode).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Finite features; float16/32/64 accepted (cast to float32 one
            chunk of ``predict_batch_size`` rows at a time).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype float64
            Rows sum to 1; columns follow ``classes_``.

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ValueError
            ``X`` not 2-D, with NaN/inf, no rows or the wrong number of features.
        """
        logits = self._logits(X)
        if logits is None:
            return np.ones((_num_rows(X), 1), dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably (log-softmax in float64).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes), dtype float64
        """
        logits = self._logits(X)
        if logits is None:
            return np.zeros((_num_rows(X), 1), dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logits -= np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return logits

    def predict(self, X) -> np.ndarray:
        """Most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_`` (same dtype).

        Raises
        ------
        NotFittedError, ValueError
            As :meth:`predict_proba`.
        """
        logits = self._logits(X)
        if logits is None:
            return np.repeat(self.classes_, _num_rows(X))
        return self.classes_[np.argmax(logits, axis=1)]

    # ---------------------------------------------------------------- pickling
    def __getstate__(self):
        state = dict(super().__getstate__())  # may be self.__dict__ itself
        model = state.get("model_")
        if model is not None and any(p.device.type != "cpu" for p in model.parameters()):
            # Pickles load on machines without the training GPU.
            state["model_"] = copy.deepcopy(model).to("cpu")
        return state


def _equals(y: np.ndarray, value) -> np.ndarray:
    """Boolean mask ``y == value`` of ``y``'s shape, False where the types cannot be equal (str vs int)."""
    with warnings.catch_warnings():  # numpy < 2 warns "elementwise comparison failed" for str vs int
        warnings.simplefilter("ignore", (FutureWarning, DeprecationWarning))
        try:
            mask = np.asarray(y == value)
        except (TypeError, ValueError):
            mask = np.zeros(len(y), dtype=bool)
    return mask if mask.shape == y.shape else np.zeros(len(y), dtype=bool)


def _num_rows(X) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)
