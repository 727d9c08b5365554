"""The engine both loops share: run settings, the feature store, one round (train, query, evaluate).

- :mod:`~skal_seg.engine.settings`: :class:`~skal_seg.engine.settings.ExperimentConfig`, the strategy
  tables and their checks (no torch: the command line reads them);
- :mod:`~skal_seg.engine.features`: candidate pixels, fixed-noise and noisy features, cached on disk;
- :mod:`~skal_seg.engine.rounds`: training the head, querying with a named strategy, evaluating.

The labeling project (:mod:`skal_seg.labeling`, a person answers) and the benchmark runner
(:mod:`skal_seg.benchmark`, the ground truth answers) sit on top. Nothing is imported here.
"""
