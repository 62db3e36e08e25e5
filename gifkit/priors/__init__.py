"""Generative priors: Stable Diffusion img2img (GIF-SD), MAE (GIF-MAE), unCLIP (GIF-DALLE), and more.

The interface they implement (:class:`gifkit.core.prior.Prior`) lives in the core; each module here is one
prior: ``sd`` (GIF-SD), ``unclip`` (GIF-DALLE), ``mae`` (GIF-MAE), ``vae`` (the mini profile's), and the
generators of the related methods, ``dreamda`` (DreamDA) and ``alia`` (ALIA's language-guided editor).
"""
