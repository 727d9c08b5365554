"""Moved to :mod:`skal_seg.diffusion.adm`; this alias is kept for one release (each name taken from it warns)."""

from skal_seg._moved import moved_module

__getattr__, __dir__ = moved_module(__name__, "skal_seg.diffusion.adm")
