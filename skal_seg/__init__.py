"""skal_seg: pixel-level active learning for semantic segmentation at tiny labeling budgets.

Diffusion-UNet pixel features, MaxHerding (diversity), eDALD (uncertainty) and
Uncertainty Herding (both, weighted by the budget) as scikit-learn estimators and modAL query strategies, after "Diffusion-Driven
Two-Stage Active Learning for Low-Budget Semantic Segmentation" (NeurIPS 2025).
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Every public name is imported on first use (PEP 562): `import skal_seg` costs nothing, the samplers
# import torch and scikit-learn when first asked for, the featurizer diffusers (seconds of imports that
# the command line and a session using only the samplers should not pay).
_LAZY = {
    "DiffusionFeaturizer": "skal_seg.featurizer",
    "TorchMLPClassifier": "skal_seg.classifier",
    "MaxHerdingSampler": "skal_seg.herding",
    "TwoStageQuery": "skal_seg.query",
    "EDALDSampler": "skal_seg.uncertainty",
    "entropy_score": "skal_seg.uncertainty",
    "bald_score": "skal_seg.uncertainty",
    "edald_score": "skal_seg.uncertainty",
    "UncertaintyHerdingSampler": "skal_seg.uncertainty_herding",
    "FilterBankFeaturizer": "skal_seg.filter_bank",
    "ConcatFeaturizer": "skal_seg.concat",
    "make_concat": "skal_seg.concat",
}

__all__ = [
    "DiffusionFeaturizer",
    "FilterBankFeaturizer",
    "ConcatFeaturizer",
    "make_concat",
    "MaxHerdingSampler",
    "EDALDSampler",
    "TwoStageQuery",
    "UncertaintyHerdingSampler",
    "TorchMLPClassifier",
    "entropy_score",
    "bald_score",
    "edald_score",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skal_seg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
