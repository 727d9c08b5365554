"""The benchmark: active learning simulated on labeled images, its results folders, tables and plots.

- :mod:`~skal_seg.benchmark.runner`: :func:`~skal_seg.benchmark.runner.run_experiment` (one strategy,
  one seed) and :func:`~skal_seg.benchmark.runner.run_full_supervision` (the ceiling);
- :mod:`~skal_seg.benchmark.simulate`: the ground truth answering a run's queries through a labeling project;
- :mod:`~skal_seg.benchmark.plotting`: learning curves, queried-pixel maps and markdown tables;
- :mod:`~skal_seg.benchmark.cli`: ``skal-seg run``, ``plot`` and ``report``.

Nothing is imported here.
"""
