"""Expansion methods by name, one file each, and the one driver that runs them.

============================  ===================================================  ==========================
method                        what it is                                           file
============================  ===================================================  ==========================
``gif-sd``, ``sd``            GIF on SD img2img; the unguided SD baseline          ``gif_sd.py``, ``sd.py``
``gif-sd-tuned``, ``sd-tuned``  the same on a prior-tuned SD (Table 9)             ``sd_tuned.py``
``gif-mae``, ``mae``          GIF on MAE token features; the unguided baseline     ``gif_mae.py``, ``mae.py``
``gif-dalle``, ``dalle``      GIF on unCLIP image embeddings; the unguided one     ``gif_dalle.py``, ``dalle.py``
``gif-vae``, ``vae``          the mini profile's VAE prior, guided or not          ``vae.py``
``dreamda``                   DreamDA: noise on the U-Net bottleneck               ``dreamda.py``
``alia``                      ALIA: language-guided edits + filters                ``alia.py``
``randaugment`` ... ``cutmix``  the augmentation baselines of Table 1              ``augment.py``
============================  ===================================================  ==========================

Each file holds the method's class, registered by :func:`register`, with its config (a dataclass of its options
and their defaults) beside it. :func:`create_method` builds one by name for a profile; :func:`expand` runs it::

    from gifkit.data import load_dataset
    from gifkit.methods import create_method, expand

    dataset, classes = load_dataset("smoke")
    method = create_method("gif-sd", classes, profile="smoke")     # "paper": real checkpoints
    print(expand(method, dataset, "out/smoke", ratio=5).summary())

The guided methods share the step of :mod:`gifkit.methods.gif` (Algorithm 1); docs/extending.md shows how to add
a criterion to its score or a new method in one file.
"""
from __future__ import annotations

# registration order = the order of `gifkit expand --help` and method_names()
from gifkit.methods import gif_sd  # noqa: F401  (isort: skip)
from gifkit.methods import sd  # noqa: F401
from gifkit.methods import sd_tuned  # noqa: F401
from gifkit.methods import gif_mae  # noqa: F401
from gifkit.methods import mae  # noqa: F401
from gifkit.methods import gif_dalle  # noqa: F401
from gifkit.methods import dalle  # noqa: F401
from gifkit.methods import vae  # noqa: F401
from gifkit.methods import alia  # noqa: F401
from gifkit.methods import dreamda  # noqa: F401
from gifkit.methods import augment  # noqa: F401
from gifkit.methods.base import (METHODS, Created, ExpansionMethod, MethodConfig, RunContext, create_method,
                                 get_method, method_names, option_names, register)
from gifkit.methods.driver import ExpandResult, expand
from gifkit.methods.gif import Imagination

__all__ = ["METHODS", "Created", "ExpansionMethod", "MethodConfig", "RunContext", "create_method", "get_method",
           "method_names", "option_names", "register", "ExpandResult", "expand", "Imagination"]
