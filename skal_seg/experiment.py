"""Moved: the run settings to :mod:`skal_seg.engine.settings`, the feature store to :mod:`skal_seg.engine.features`,
one round to :mod:`skal_seg.engine.rounds` and the benchmark loop to :mod:`skal_seg.benchmark.runner`.

This alias is kept for one release: each name taken from it comes from its new module and warns.
"""

from skal_seg._moved import moved_module

__getattr__, __dir__ = moved_module(__name__, "skal_seg.engine.settings", "skal_seg.engine.features",
                                    "skal_seg.engine.noisy", "skal_seg.engine.rounds", "skal_seg.benchmark.runner")
