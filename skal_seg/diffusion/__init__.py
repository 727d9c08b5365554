"""The diffusion models behind the features: loading, the embedded model, ADM checkpoints, training.

- :mod:`~skal_seg.diffusion.models`: :func:`~skal_seg.diffusion.models.load_diffusion_model`
  (the embedded model, an ADM checkpoint, a ``save_pretrained`` folder or a Hub id);
- :mod:`~skal_seg.diffusion.embedded`: the small DDPM shipped in the package;
- :mod:`~skal_seg.diffusion.adm`: OpenAI guided-diffusion (ADM) checkpoints as diffusers UNets;
- :mod:`~skal_seg.diffusion.train_ddpm`: training (or resuming) a DDPM on unlabeled images.

Nothing is imported here: torch and diffusers load when one of these modules is.
"""
