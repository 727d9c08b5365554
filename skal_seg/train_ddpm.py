"""Moved to :mod:`skal_seg.diffusion.train_ddpm`; this alias is kept for one release (each name taken from it warns)."""

from skal_seg._moved import moved_module

__getattr__, __dir__ = moved_module(__name__, "skal_seg.diffusion.train_ddpm")

if __name__ == "__main__":  # `python -m skal_seg.train_ddpm`, as documented before the move
    from skal_seg.diffusion.train_ddpm import main

    main()
