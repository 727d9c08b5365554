"""Featurizing and per-image herding as tasks on a Ray cluster (local by default, or an existing one).

:class:`RayExecutor` runs the embarrassingly parallel parts of a run on a
pool of Ray actors: the diffusion features of candidate pixels
(:meth:`~skal_seg.featurizer.DiffusionFeaturizer.transform`), their noisy
draws (``noisy_views`` / ``noisy_view_fn``) and the per-image local
MaxHerding of :class:`~skal_seg.query.TwoStageQuery`. Hand it to
``DiffusionFeaturizer(executor=...)``, ``TwoStageQuery(executor=...)``,
``run_experiment(executor=...)`` or ``skal-seg run --workers N``.

Results are the single process's, bit for bit, when each worker uses the
same torch thread count and device as that process:

* the fixed noise is one tensor drawn from ``noise_seed`` when the featurizer
  is fitted, and the noisy draws are drawn once on the driver; both are
  shipped to the workers, never drawn there, so how images are split cannot
  change them;
* the images of a task are a whole number of the featurizer's UNet batches,
  aligned with the single process's batches, so every forward has the same
  batch composition (a different composition may change a value by float32
  rounding);
* local herding of an image receives the same seed and rows as in the
  single process.

Ray is imported only when an executor starts (``import skal_seg`` does not
import it); install it with ``pip install "skal-seg[ray]"``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = ["RayExecutor", "add_ray_arguments", "executor_from_args", "worker_device"]

# Each worker runs at most this many tasks ahead of the one it is on: the next task's
# inputs travel while the current one computes.
_TASKS_IN_FLIGHT_PER_WORKER = 2
# Tasks per worker a call is split into when the caller does not say: a few, so that a slow
# worker (a busy node) does not hold up the end, and progress moves, without paying
# per-task overhead on every image.
_TASKS_PER_WORKER = 4
# Shared objects a worker keeps deserialized (the featurizer with its weights, noise draws).
_WORKER_CACHE_SIZE = 4

_worker_device = None  # set in each worker process by _Worker


def worker_device():
    """The torch device of the Ray worker this runs in (None outside a worker).

    ``cuda`` when Ray gave the worker a GPU (``gpus_per_worker > 0``), else ``cpu``.

    Returns
    -------
    torch.device or None
    """
    return _worker_device


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "RayExecutor needs Ray: pip install \"skal-seg[ray]\" (or pip install \"ray[default]>=2.9,<3\")"
        ) from exc
    return ray


class _Worker:
    """One Ray actor: fixed torch threads and device, shared objects deserialized once."""

    def __init__(self, torch_threads: int):
        global _worker_device
        import torch

        torch.set_num_threads(torch_threads)
        ray = _import_ray()
        gpus = ray.get_gpu_ids()
        # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it gave this actor: they are cuda:0, ...
        _worker_device = torch.device("cuda" if gpus and torch.cuda.is_available() else "cpu")
        self._cache: dict[str, Any] = {}

    def _shared(self, boxed_ref) -> Any:
        ref = boxed_ref[0]  # boxed in a list so Ray passes the reference, not a fresh copy per task
        key = ref.hex()
        if key not in self._cache:
            if len(self._cache) >= _WORKER_CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = _import_ray().get(ref)
        return self._cache[key]

    def run(self, fn: Callable, shared: list, chunk: list) -> list:
        args = [self._shared(s) for s in shared]
        return [fn(*args, *item) for item in chunk]


class RayExecutor:
    """Runs featurizing and per-image herding as tasks on Ray workers.

    Parameters
    ----------
    num_workers : int or None, default=None
        Worker actors (each one a process holding the model). None: as many
        as the cluster's CPUs (or GPUs, with ``gpus_per_worker``) allow; a
        local cluster gets ``os.cpu_count() // cpus_per_worker``.
    address : str or None, default=None
        None starts a local cluster of ``num_workers * cpus_per_worker``
        CPUs in this process (or uses the one ``ray.init`` already started
        here). ``"auto"`` or ``"HOST:6379"`` (``ray://HOST:10001`` for Ray
        Client) joins an existing cluster (``ray start --head`` on the head,
        ``ray start --address HOST:6379`` on the others). Every node needs
        ``skal_seg`` installed (or ``init_options={"runtime_env":
        {"py_modules": [...]}}``).
    cpus_per_worker : int, default=1
        CPUs Ray reserves for each worker.
    gpus_per_worker : float or None, default=None
        GPUs Ray reserves for each worker (fractions share a GPU); a worker
        given a GPU moves the featurizer's model to it. None: 1 when the
        featurizer was fitted on CUDA, else 0 (decided when the workers
        start).
    torch_threads : int or None, default=None
        ``torch.set_num_threads`` in each worker; None = ``cpus_per_worker``.
        Features equal the single process's bit for bit when this equals
        that process's thread count (the tests run both with 1).
    tasks_per_worker : int, default=4
        Each call is split into about this many tasks per worker (whole
        UNet batches of images, or whole images for herding): more tasks
        balance uneven workers and move the progress bar more often; fewer
        pay less per-task overhead.
    init_options : dict or None, default=None
        Extra keywords of ``ray.init`` (``object_store_memory``,
        ``runtime_env``, ``log_to_driver``, ...).

    Attributes
    ----------
    num_workers_ : int
        Workers started (after the first call or :meth:`start`).
    gpus_per_worker_ : float
    owns_ray_ : bool
        Whether this executor called ``ray.init`` (and so :meth:`shutdown`
        calls ``ray.shutdown``).

    Notes
    -----
    The executor is a handle to a cluster: ``copy.deepcopy`` and
    ``sklearn.base.clone`` return it unchanged, so estimators cloned with it
    share the workers. Use it as a context manager, or call
    :meth:`shutdown`, to stop the workers.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        address: str | None = None,
        cpus_per_worker: int = 1,
        gpus_per_worker: float | None = None,
        torch_threads: int | None = None,
        tasks_per_worker: int = _TASKS_PER_WORKER,
        init_options: dict | None = None,
    ):
        self.num_workers = num_workers
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.torch_threads = torch_threads
        self.tasks_per_worker = tasks_per_worker
        self.init_options = init_options
        self._actors: list = []
        self._puts: dict = {}

    def __deepcopy__(self, memo) -> "RayExecutor":
        return self  # a handle to running workers: clones share them

    def __reduce__(self):
        # Pickled (e.g. inside an estimator sent elsewhere) as its settings: no live handles travel.
        return (RayExecutor, (self.num_workers, self.address, self.cpus_per_worker, self.gpus_per_worker,
                              self.torch_threads, self.tasks_per_worker, self.init_options))

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (f"RayExecutor(num_workers={self.num_workers!r}, address={self.address!r}, "
                f"gpus_per_worker={self.gpus_per_worker!r})")

    # ------------------------------------------------------------------ lifecycle

    def _check_params(self) -> None:
        def positive_int(value, name, none_ok):
            ok = (value is None and none_ok) or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
            if not ok:
                raise ValueError(f"{name} must be a positive integer{' or None' if none_ok else ''}, got {value!r}")

        positive_int(self.num_workers, "num_workers", True)
        positive_int(self.cpus_per_worker, "cpus_per_worker", False)
        positive_int(self.torch_threads, "torch_threads", True)
        positive_int(self.tasks_per_worker, "tasks_per_worker", False)
        g = self.gpus_per_worker
        if g is not None and (isinstance(g, bool) or not isinstance(g, (int, float)) or not g >= 0):
            raise ValueError(f"gpus_per_worker must be None or a number >= 0, got {g!r}")
        if self.address is not None and not isinstance(self.address, str):
            raise ValueError(f"address must be None or a string such as 'auto' or 'HOST:6379', got {self.address!r}")
        if self.init_options is not None and not isinstance(self.init_options, dict):
            raise ValueError(f"init_options must be a dict of ray.init keywords, got {self.init_options!r}")

    def start(self, gpus_per_worker: float | None = None) -> "RayExecutor":
        """Connect to (or start) the cluster and start the workers; a no-op once started.

        Parameters
        ----------
        gpus_per_worker : float or None
            Used when the ``gpus_per_worker`` parameter is None (the
            featurizer's device decides it at the first featurizing call).

        Returns
        -------
        self

        Raises
        ------
        ImportError
            Ray is not installed.
        ValueError
            Bad parameters, or a cluster without the CPUs/GPUs one worker needs.
        """
        if self._actors:
            return self
        self._check_params()
        ray = _import_ray()
        gpus = self.gpus_per_worker if self.gpus_per_worker is not None else (gpus_per_worker or 0)
        self.owns_ray_ = not ray.is_initialized()
        if self.owns_ray_:
            options = {"include_dashboard": False, **(self.init_options or {})}
            if self.address is None:
                workers = self.num_workers or max(1, (os.cpu_count() or 1) // self.cpus_per_worker)
                options.setdefault("num_cpus", workers * self.cpus_per_worker)
            else:
                options["address"] = self.address
            ray.init(**options)
        resources = ray.cluster_resources()
        cpus, n_gpus = resources.get("CPU", 0), resources.get("GPU", 0)
        if gpus > 0 and n_gpus < gpus:
            raise ValueError(f"gpus_per_worker={gpus} but the Ray cluster has {n_gpus:g} GPUs; "
                             "start GPU nodes or set gpus_per_worker=0")
        if cpus < self.cpus_per_worker:
            raise ValueError(f"cpus_per_worker={self.cpus_per_worker} but the Ray cluster has {cpus:g} CPUs")
        n = self.num_workers
        if n is None:
            n = int(cpus // self.cpus_per_worker)
            if gpus > 0:
                n = min(n, int(n_gpus // gpus))
        threads = self.torch_threads or self.cpus_per_worker
        actor = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=gpus)(_Worker)
        self._actors = [actor.remote(threads) for _ in range(max(1, n))]
        self.num_workers_, self.gpus_per_worker_ = len(self._actors), float(gpus)
        return self

    def shutdown(self) -> None:
        """Stop the workers (and the local Ray instance this executor started)."""
        if not self._actors:
            return
        ray = _import_ray()
        for actor in self._actors:
            ray.kill(actor)
        self._actors, self._puts = [], {}
        if getattr(self, "owns_ray_", False) and ray.is_initialized():
            ray.shutdown()

    # ------------------------------------------------------------------ running

    def put(self, obj: Any, key: Any = None) -> list:
        """Place ``obj`` in the object store once; returns a handle for ``map(..., shared=...)``.

        Parameters
        ----------
        obj : object
        key : hashable, optional
            Objects put under the same key are stored once (the handle is
            kept while the executor runs).

        Returns
        -------
        list
            ``[ObjectRef]``: each worker deserializes it once and keeps it.
        """
        self.start()
        if key is not None and key in self._puts:
            return self._puts[key][0]
        boxed = [_import_ray().put(obj)]
        if key is not None:
            self._puts[key] = (boxed, obj)  # obj kept alive: its id() stays its own
        return boxed

    def imap(self, fn: Callable, items: Iterable[tuple], *, shared: Sequence = (), chunk_size: int | None = None,
             total: int | None = None, progress: bool = False, desc: str | None = None,
             unit: str = "item") -> Iterator[Any]:
        """``fn(*shared, *item)`` for each item, on the workers; yields the results in ``items`` order.

        Parameters
        ----------
        fn : callable
            A module-level function (workers import it by name).
        items : iterable of tuple
            Positional arguments of each call. Read lazily, a few tasks
            ahead of the workers: a generator keeps only those in memory.
        shared : sequence
            Arguments common to every call, each either an object (put in
            the object store once for this call) or a handle from :meth:`put`;
            each worker deserializes each once.
        chunk_size : int or None
            Items per task; None: about ``tasks_per_worker`` tasks per worker.
        total : int or None
            Number of items, for an ``items`` without ``len``.
        progress : bool, default=False
            A tqdm bar over items, moved as tasks finish.
        desc, unit : str
            Its label and unit.

        Yields
        ------
        object
            ``fn``'s results, in order (a result that finishes early waits
            for the earlier ones).
        """
        self.start()
        ray = _import_ray()
        n = len(items) if total is None else int(total)
        if chunk_size is None:
            chunk_size = max(1, math.ceil(n / (self.num_workers_ * self.tasks_per_worker)))
        source = iter(items)
        boxed = [s if isinstance(s, list) and len(s) == 1 and isinstance(s[0], ray.ObjectRef) else [ray.put(s)]
                 for s in shared]
        load = [0] * len(self._actors)
        pending: dict = {}  # ObjectRef -> (chunk index, actor index, items in the chunk)
        done: dict[int, list] = {}
        submitted = next_out = 0
        exhausted = False
        bar = tqdm(total=n, desc=desc, unit=unit, disable=not progress, leave=False)
        try:
            while True:
                while not exhausted and min(load) < _TASKS_IN_FLIGHT_PER_WORKER:  # every worker busy, a few deep
                    chunk = list(islice(source, chunk_size))
                    if not chunk:
                        exhausted = True
                        break
                    a = load.index(min(load))
                    ref = self._actors[a].run.remote(fn, boxed, chunk)
                    pending[ref] = (submitted, a, len(chunk))
                    load[a] += 1
                    submitted += 1
                if next_out in done:
                    yield from done.pop(next_out)
                    next_out += 1
                elif pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    c, a, size = pending.pop(ready[0])
                    load[a] -= 1
                    done[c] = ray.get(ready[0])
                    bar.update(size)
                else:
                    return
        finally:
            bar.close()
            for ref in pending:  # a caller that stops early (or an error) leaves no work running
                ray.cancel(ref)

    def map(self, fn: Callable, items: Sequence[tuple], **kwargs) -> list:
        """``list(imap(fn, items, **kwargs))``: the results in ``items`` order.

        Parameters
        ----------
        fn, items, **kwargs
            As in :meth:`imap`.

        Returns
        -------
        list
        """
        return list(self.imap(fn, items, **kwargs))

    # ------------------------------------------------------------------ featurizing

    def images_per_call(self, featurizer, images: int) -> int:
        """How many images to featurize per call where one process would take ``images``.

        ``images`` per worker, so that every worker gets work, when that keeps
        the UNet batches of the single process: when ``featurizer.batch_size_``
        divides ``images``, the groups of ``images`` are whole batches in both
        cases. Otherwise ``images`` (fewer tasks, the same values).

        Parameters
        ----------
        featurizer : DiffusionFeaturizer, fitted
        images : int
            Images per call in one process.

        Returns
        -------
        int
        """
        if images % featurizer.batch_size_:
            return images
        return images * self.start(gpus_per_worker=_default_gpus(featurizer)).num_workers_

    def featurize(self, featurizer, images: list[np.ndarray], jobs: list, noises, out: np.ndarray, desc: str) -> None:
        """Fill ``out`` as ``featurizer._run(images, jobs, noises, out, desc)`` does, on the workers.

        Called by :class:`~skal_seg.featurizer.DiffusionFeaturizer` when its
        ``executor`` is set; each task takes whole UNet batches of the images
        (aligned with the single process's batches).

        Parameters
        ----------
        featurizer : DiffusionFeaturizer, fitted
        images : list of ndarray (H, W, 3)
        jobs : list of featurizer jobs
            One per image: its output rows and pixels.
        noises : torch.Tensor of shape (K, 3, S_h, S_w)
        out : ndarray of shape (K, n_rows, D)
        desc : str
            Progress-bar label.
        """
        jobs = [j for j in jobs if j.n_rows > 0]  # as _run skips them: the batches stay aligned
        if not jobs:
            return
        self.start(gpus_per_worker=_default_gpus(featurizer))
        batch = featurizer.batch_size_
        n_batches = math.ceil(len(jobs) / batch)
        per_task = batch * max(1, math.ceil(n_batches / (self.num_workers_ * self.tasks_per_worker)))
        chunks = [jobs[i : i + per_task] for i in range(0, len(jobs), per_task)]
        items = [([images[j.image] for j in chunk],
                  [(None if j.pixels is None else j.pixels.numpy(), j.grid) for j in chunk]) for chunk in chunks]
        key = _featurizer_key(featurizer)  # the weights travel once per executor, not once per call
        model = self._puts[key][0] if key in self._puts else self.put(_worker_copy(featurizer), key=key)
        results = self.imap(_featurize_chunk, items, shared=(model, noises), chunk_size=1,
                            progress=featurizer.progress, desc=desc, unit="task")
        for chunk, values in zip(chunks, results):
            out[:, chunk[0].row : chunk[0].row + values.shape[1]] = values


def add_ray_arguments(parser) -> None:
    """Add ``--workers``, ``--ray-address`` and ``--gpus-per-worker`` to an argparse parser or group.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    """
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="featurize and run the per-image herding on N Ray workers (a local cluster unless "
                             "--ray-address; pip install 'skal-seg[ray]'); same results as one process")
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="join an existing Ray cluster ('auto', HOST:6379 or ray://HOST:10001); workers default "
                             "to its CPUs (or GPUs)")
    parser.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                        help="GPUs Ray reserves per worker (default: 1 when the featurizer runs on CUDA, else 0)")


def executor_from_args(args) -> "RayExecutor | None":
    """The :class:`RayExecutor` the options of :func:`add_ray_arguments` ask for (None: one process).

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    RayExecutor or None
        Not started yet (Ray is imported when it starts).

    Raises
    ------
    ValueError
        ``--workers`` below 1 or ``--gpus-per-worker`` below 0.
    """
    if args.workers is None and args.ray_address is None:
        return None
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    if args.gpus_per_worker is not None and not args.gpus_per_worker >= 0:
        raise ValueError(f"--gpus-per-worker must be a number >= 0, got {args.gpus_per_worker}")
    return RayExecutor(num_workers=args.workers, address=args.ray_address, gpus_per_worker=args.gpus_per_worker)


def _default_gpus(featurizer) -> int:
    """GPUs per worker when ``gpus_per_worker`` is None: one when the featurizer runs on CUDA."""
    return 1 if featurizer.device_.type == "cuda" else 0


def _featurizer_key(featurizer) -> tuple:
    # The model is named by the module itself (the repr of a large UNet is long and says less).
    params = {k: v for k, v in featurizer.get_params(deep=False).items()
              if k not in ("executor", "progress", "model")}
    # The module (hashed by identity) is held by the key, so its identity cannot be reused.
    return ("featurizer", featurizer.unet_, repr(sorted(params.items(), key=lambda kv: kv[0])))


def _worker_copy(featurizer):
    """The fitted featurizer as workers get it: weights on the CPU, no executor, no progress bar."""
    import copy

    payload = copy.copy(featurizer)  # shallow: the caller's object is not changed
    payload.executor, payload.progress = None, False
    if featurizer.device_.type != "cpu":  # a worker without a GPU must be able to load it
        import torch

        payload.unet_ = copy.deepcopy(featurizer.unet_).to("cpu")
        payload.device_ = torch.device("cpu")
    return payload


def _featurize_chunk(featurizer, noises, images: list[np.ndarray], jobs: list[tuple]) -> np.ndarray:
    """Worker side of :meth:`RayExecutor.featurize`: the rows of ``jobs``, shape (K, rows, D)."""
    import torch

    from skal_seg.featurizer import _Job

    device = worker_device() or torch.device("cpu")
    if featurizer.device_ != device:  # once per worker: the cached copy stays on the device
        featurizer.unet_.to(device)
        featurizer.device_ = device
    local, row = [], 0
    for i, (pixels, grid) in enumerate(jobs):
        local.append(_Job(i, row, None if pixels is None else torch.from_numpy(np.array(pixels)), grid))
        row += local[-1].n_rows
    out = np.empty((len(noises), row, featurizer.n_features_out_), dtype=featurizer.output_dtype)
    featurizer._run(images, local, noises, out, "")
    return out
