"""skal_seg: pixel-level active learning for semantic segmentation at tiny labeling budgets.

Diffusion-UNet pixel features, MaxHerding (diversity) and eDALD (uncertainty)
as scikit-learn estimators and modAL query strategies, after "Diffusion-Driven
Two-Stage Active Learning for Low-Budget Semantic Segmentation" (NeurIPS 2025).
"""

from skal_seg.herding import MaxHerdingSampler
from skal_seg.query import TwoStageQuery
from skal_seg.uncertainty import EDALDSampler, bald_score, edald_score, entropy_score

__version__ = "0.1.0"

__all__ = [
    "MaxHerdingSampler",
    "EDALDSampler",
    "TwoStageQuery",
    "entropy_score",
    "bald_score",
    "edald_score",
]
