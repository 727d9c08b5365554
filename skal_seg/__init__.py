"""skal_seg: pixel-level active learning for semantic segmentation at tiny labeling budgets.

Diffusion-UNet pixel features, MaxHerding (diversity), eDALD (uncertainty) and
Uncertainty Herding (both, weighted by the budget) as scikit-learn estimators and modAL query strategies, after "Diffusion-Driven
Two-Stage Active Learning for Low-Budget Semantic Segmentation" (NeurIPS 2025).
"""

from importlib import import_module
from typing import Any

from skal_seg._modal_compat import patch_modal
from skal_seg.herding import MaxHerdingSampler
from skal_seg.query import TwoStageQuery
from skal_seg.uncertainty import EDALDSampler, bald_score, edald_score, entropy_score
from skal_seg.uncertainty_herding import UncertaintyHerdingSampler

__version__ = "0.1.0"

# modAL 0.4.2.1 passes scikit-learn's pre-1.6 keyword name on every teach(), which warned in the
# user's loop each round: see skal_seg/_modal_compat.py for why this and not a warnings filter.
patch_modal()

# Imported on first use (PEP 562): the featurizer pulls in diffusers, a few
# seconds of import that a session using only the samplers should not pay.
_LAZY = {
    "DiffusionFeaturizer": "skal_seg.featurizer",
    "TorchMLPClassifier": "skal_seg.classifier",
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
