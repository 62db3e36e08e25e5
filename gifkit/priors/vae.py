"""The mini profile's prior: a small convolutional VAE that gifkit trains itself.

Stable Diffusion cannot run on a 2-core CPU in minutes, so the ``mini``
profile swaps in a prior with the same *shape of latent*: a VAE whose latent
is spatial with several channels, ``f`` of shape ``[N, 4, 7, 7]`` for 28 px
images (SD: ``[N, 4, 64, 64]`` for 512 px), so GIF's channel-wise noise
``z, b`` of shape ``[K, 4, 1, 1]`` scales and shifts whole feature maps, as it
does for SD. As for SD, the latent is multiplied by a scaling factor
(1 / std of the posterior means on training images) so that ``f`` has unit
variance, and GIF-SD's eps = 0.8 means a comparable change.

Training (``train_vae``): the official *training* images of the dataset
(Fashion-MNIST: all 60,000, no labels; never the test set), Bernoulli
likelihood (BCE on intensities in [0, 1]) + 0.01 x KL (a lightly regularised
autoencoder like SD's: with a KL weight of 1, three of the four latent
channels collapse onto the prior and channel-wise noise on them would change
nothing), Adam with a one-cycle schedule, a fixed seed and a fixed number of
torch threads (``VAEConfig.threads``: CPU kernels split their sums by thread,
so the bytes of the weights depend on it; with it fixed, training again on the
CPU gives the same bytes). A VAE folder holds ``model.safetensors`` and
``config.json`` (the training settings, the measured losses, time and
per-channel activity, and the weights' sha256, checked on every load).

Where the weights come from (:func:`get_vae`, :func:`locate_vae`): gifkit
ships the Fashion-MNIST prior it trained with the default settings
(``gifkit/assets/mini-vae/fashion-mnist/``; its sha256 and the command that
reproduces it are in ``gifkit/assets/mini-vae/README.md``), so the mini profile
trains nothing before it expands. Other settings or datasets are trained once
into ``<user cache>/gifkit/mini-vae/<dataset>/``; ``gifkit mini-prior
--retrain`` trains the default ones again there, says whether the bytes equal
the shipped ones, and from then on the cached copy is the one used.

The prior (``VAEPrior``), per (seed, variant) job, mirrors GIF-SD's use of
its prior: the seed image is randomly rotated (up to 15 degrees) and
flipped with a generator seeded by the job's key (SD's seed transform), then
encoded; ``f`` is a *posterior sample* ``mu + sigma * n`` (``n`` drawn from the
job's key), the VAE's counterpart of SD img2img's stochastic denoising. The
unguided baseline ("vae") decodes ``f`` as it is; GIF ("gif-vae") perturbs it
(Eq. 1) under the guidance of :mod:`gifkit.models.protoguide`.
"""
from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from gifkit.core.prior import Job, Latents, Prior
from gifkit.core.rng import derive_seed, generator
from gifkit.io.files import atomic_write_bytes, read_json, write_json
from gifkit.io.runs import matching_record

__all__ = ["VAEConfig", "ConvVAE", "VAEPrior", "train_vae", "save_vae", "load_vae", "get_vae", "locate_vae",
           "cache_dir", "shipped_dir", "tiny_vae", "WEIGHTS", "CONFIG", "REPRODUCE"]

WEIGHTS = "model.safetensors"
_print = functools.partial(print, flush=True)  # progress lines show up at once when stdout is a file
CONFIG = "config.json"
REPRODUCE = "gifkit mini-prior --retrain"  # trains the shipped prior again (default settings) and compares the bytes


@dataclass
class VAEConfig:
    """Architecture and training settings (all recorded in ``config.json``)."""

    image_size: int = 28
    in_channels: int = 1
    latent_channels: int = 4  # channels of the spatial latent (SD: 4)
    width: int = 16  # channels at 28 px; 2x at 14 px, 4x at 7 px
    beta: float = 0.01  # KL weight (1.0 collapses 3 of the 4 latent channels onto the prior)
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    dataset: str = "fashion-mnist"
    split: str = "pool"  # the official training images, without labels
    max_images: int | None = None  # None: the whole split
    threads: int = 2  # torch threads while training: the weights' bytes depend on it, so it is part of the settings

    @property
    def arch(self) -> dict:
        return {k: getattr(self, k) for k in ("image_size", "in_channels", "latent_channels", "width")}


class ConvVAE(nn.Module):
    """28 -> 14 -> 7 conv encoder to ``(mu, logvar)`` [N, C_lat, 7, 7]; a mirrored decoder to logits [N, 1, 28, 28]."""

    def __init__(self, image_size: int = 28, in_channels: int = 1, latent_channels: int = 4, width: int = 32):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"ConvVAE: image_size must be a multiple of 4, got {image_size}")
        w, w2 = width, 2 * width
        self.image_size, self.in_channels, self.latent_channels = image_size, in_channels, latent_channels
        # SD's "scaling factor": 1 / std of the posterior means on training images, set after training, so the
        # prior's latent f = scaling_factor * z has unit variance (saved with the weights)
        self.register_buffer("scaling_factor", torch.ones(()))
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, w2, 4, stride=2, padding=1), nn.SiLU(),  # 14
            nn.Conv2d(w2, 2 * w2, 4, stride=2, padding=1), nn.SiLU(),  # 7
            nn.Conv2d(2 * w2, 2 * w2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(2 * w2, 2 * latent_channels, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * w2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(2 * w2, 2 * w2, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(2 * w2, w2, 4, stride=2, padding=1), nn.SiLU(),  # 14
            nn.ConvTranspose2d(w2, w, 4, stride=2, padding=1), nn.SiLU(),  # 28
            nn.Conv2d(w, in_channels, 3, padding=1),
        )

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.image_size // 4, self.image_size // 4)

    def encode(self, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images [N, in_channels, S, S] in [0, 1] -> (mu, logvar), each [N, C_lat, S/4, S/4]."""
        mu, logvar = self.encoder(x01 * 2 - 1).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # [N, in_channels, S, S]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def loss(self, x01: torch.Tensor, beta: float = 1.0, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """Negative ELBO per image (BCE summed over pixels + beta * KL summed over latent elements)."""
        mu, logvar = self.encode(x01)
        n = torch.randn_like(mu) if noise is None else noise
        z = mu + (0.5 * logvar).exp() * n
        rec = F.binary_cross_entropy_with_logits(self.decode_logits(z), x01, reduction="sum") / len(x01)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / len(x01)
        return rec + beta * kl, {"rec": float(rec.detach()), "kl": float(kl.detach())}


def tiny_vae(seed: int = 0, width: int = 8) -> ConvVAE:
    """An untrained small VAE (same class) for the smoke profile and tests."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ConvVAE(width=width).eval()


def cache_dir(dataset: str = "fashion-mnist", root: str | Path | None = None) -> Path:
    """``<user cache>/gifkit/mini-vae/<dataset>`` (``root`` replaces ``<user cache>/gifkit/mini-vae``)."""
    if root is None:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("gifkit")) / "mini-vae"
    return Path(root) / dataset


def shipped_dir(dataset: str = "fashion-mnist") -> Path:
    """``gifkit/assets/mini-vae/<dataset>``: the weights gifkit ships (only Fashion-MNIST's, default settings)."""
    return Path(str(resources.files("gifkit") / "assets" / "mini-vae")) / dataset


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_vae(images: np.ndarray | torch.Tensor, config: VAEConfig, progress: bool = True,
              log=_print) -> tuple[ConvVAE, dict]:
    """Train a :class:`ConvVAE` on ``images`` (uint8 [N, H, W] or float [N, 1, H, W] in [0, 1]); returns (model, stats)."""
    x = torch.as_tensor(np.asarray(images))
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    if x.ndim == 3:
        x = x[:, None]
    if config.max_images is not None:
        x = x[: config.max_images]
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)  # the bytes of the weights depend on the thread count
    try:
        return _train(x, config, progress, log)
    finally:
        torch.set_num_threads(threads)


def _train(x: torch.Tensor, config: VAEConfig, progress: bool, log) -> tuple[ConvVAE, dict]:
    g = torch.Generator().manual_seed(derive_seed(config.seed, "vae-train"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "vae-init"))
        model = ConvVAE(**config.arch)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = (len(x) + config.batch_size - 1) // config.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch,
                                                pct_start=0.1)
    t0 = time.perf_counter()
    history = []
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(x), generator=g)
        total, parts, n = 0.0, {"rec": 0.0, "kl": 0.0}, 0
        for i in range(steps_per_epoch):
            batch = x[order[i * config.batch_size:(i + 1) * config.batch_size]]
            noise = torch.randn(batch.shape[0], config.latent_channels, config.image_size // 4, config.image_size // 4,
                                generator=g)
            loss, p = model.loss(batch, config.beta, noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
            n += len(batch)
            for k in parts:
                parts[k] += p[k] * len(batch)
        history.append({"epoch": epoch + 1, "loss": total / n, **{k: v / n for k, v in parts.items()},
                        "seconds": round(time.perf_counter() - t0, 1)})
        if progress:
            h = history[-1]
            log(f"  VAE epoch {h['epoch']}/{config.epochs}: -ELBO {h['loss']:.2f} (BCE {h['rec']:.2f}, "
                f"KL {h['kl']:.2f}) per image, {h['seconds']:.0f} s")
    model.eval()
    with torch.no_grad():
        sample = x[torch.randperm(len(x), generator=g)[:5000]]
        mu = torch.cat([model.encode(sample[i:i + 500])[0] for i in range(0, len(sample), 500)])
        model.scaling_factor.fill_(1.0 / float(mu.std()))
    stats = {"n_images": len(x), "seconds": round(time.perf_counter() - t0, 1), "history": history,
             "scaling_factor": float(model.scaling_factor),
             "latent_std_per_channel": [round(float(v), 3) for v in mu.std(dim=(0, 2, 3))],
             "torch": torch.__version__, "threads": torch.get_num_threads()}
    return model, stats


def save_vae(model: ConvVAE, config: VAEConfig, stats: dict, folder: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (settings, stats, sha256) atomically into ``folder``."""
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = save({k: v.contiguous() for k, v in model.state_dict().items()})
    atomic_write_bytes(folder / WEIGHTS, data)
    meta = {"config": asdict(config), "stats": stats, "sha256": hashlib.sha256(data).hexdigest(), "weights": WEIGHTS}
    write_json(folder / CONFIG, meta)
    return folder


def load_vae(folder: str | Path) -> tuple[ConvVAE, dict]:
    """Load a VAE folder, checking the weights' sha256; returns (model, the config.json contents plus ``folder``)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise FileNotFoundError(f"no trained mini VAE in {folder}: run `gifkit mini-prior` (about 2-5 minutes on "
                                f"2 CPU cores) to train it")
    meta = read_json(folder / CONFIG, what="the mini VAE prior's record")
    digest = _sha256(folder / WEIGHTS)
    if digest != meta.get("sha256"):
        raise ValueError(f"{folder / WEIGHTS} does not match the sha256 in {folder / CONFIG} "
                         f"({digest[:12]} vs {str(meta.get('sha256'))[:12]}): retrain with `{REPRODUCE}`")
    known = {f.name for f in fields(VAEConfig)}
    config = VAEConfig(**{k: v for k, v in meta["config"].items() if k in known})
    model = ConvVAE(**config.arch)
    model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    return model.eval(), {**meta, "folder": str(folder)}


def locate_vae(dataset: str = "fashion-mnist", *, cache_root: str | Path | None = None, **config) -> Path | None:
    """The folder :func:`get_vae` loads for these settings (:class:`VAEConfig` fields) without training: the user
    cache when it holds them (a retrain), else the shipped weights when they have them; ``None`` otherwise."""
    settings = asdict(VAEConfig(dataset=dataset, **config))
    for folder in (cache_dir(dataset, cache_root), shipped_dir(dataset)):
        if (folder / WEIGHTS).is_file() and \
                matching_record(folder / CONFIG, settings, key="config", on_mismatch="ignore") is not None:
            return folder
    return None


def get_vae(dataset: str = "fashion-mnist", *, retrain: bool = False, data_root: str | Path | None = None,
            cache_root: str | Path | None = None, progress: bool = True, log=_print,
            **config) -> tuple[ConvVAE, dict]:
    """The mini VAE prior of ``dataset`` with these settings (:class:`VAEConfig` fields; the defaults are the
    shipped ones): the one :func:`locate_vae` finds, else (and with ``retrain``) trained first into the user cache.
    A retrain with the shipped settings says whether its bytes equal the shipped weights'."""
    cfg = VAEConfig(dataset=dataset, **config)
    if not retrain:
        found = locate_vae(dataset, cache_root=cache_root, **config)
        if found is not None:
            try:
                return load_vae(found)
            except ValueError as err:  # the weights do not match their recorded sha256
                log(f"{err}: training it again")
    from gifkit.data import load_dataset

    folder = cache_dir(dataset, cache_root)
    pool, _ = load_dataset(dataset, cfg.split, root=data_root, profile="mini")
    if progress:
        log(f"training the mini VAE prior on {len(pool) if cfg.max_images is None else cfg.max_images} "
            f"{dataset} {cfg.split} images (no labels), {cfg.epochs} epochs, {cfg.threads} threads -> {folder}")
    model, stats = train_vae(pool.images, cfg, progress=progress, log=log)
    save_vae(model, cfg, stats, folder)
    model, meta = load_vae(folder)
    shipped = read_json(shipped_dir(dataset) / CONFIG, None, "the shipped mini VAE prior's record")
    if shipped is not None and shipped.get("config") == meta["config"]:
        same = shipped.get("sha256") == meta["sha256"]
        meta["same_bytes_as_shipped"] = same
        log(f"sha256 {meta['sha256']}: {'the same bytes as' if same else 'other bytes than'} the shipped weights "
            f"({shipped_dir(dataset)}{'' if same else ', trained with torch ' + str(shipped['stats'].get('torch'))})")
    return model, meta


class VAEPrior(Prior):
    """GIF's prior interface on a :class:`ConvVAE` (see the module docstring).

    ``sample``: f is a posterior sample ``mu + temperature * sigma * n`` or the mean ``mu``; ``rotation`` /
    ``flip``: the seed transform (the method's defaults, :mod:`gifkit.methods.vae`: SD's 15 degrees and flip).
    """

    name = "vae"
    channel_dim = 1

    def __init__(self, vae: ConvVAE, *, rotation: float, flip: bool, sample: bool, temperature: float,
                 device: str | torch.device | None = None):
        self.vae = self.weights = vae.eval().requires_grad_(False)
        self.device = torch.device(device) if device is not None else next(vae.parameters()).device
        self.vae.to(self.device)
        self.resolution = vae.image_size
        self.rotation, self.flip, self.sample, self.temperature = float(rotation), bool(flip), bool(sample), temperature
        self.seed_transform = v2.Compose([v2.RandomRotation(self.rotation),
                                          v2.RandomHorizontalFlip(0.5 if self.flip else 0.0)])

    @property
    def params(self) -> dict:
        return {"rotation": self.rotation, "flip": int(self.flip), "posterior_sample": int(self.sample),
                "temperature": self.temperature}

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def _seed_tensor(self, job: Job) -> torch.Tensor:
        image = job.image.convert("L")
        if image.size != (self.resolution, self.resolution):
            image = image.resize((self.resolution, self.resolution), resample=3)  # bicubic
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(*job.key, "seed-transform"))
            image = self.seed_transform(image)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())[None].float() / 255.0  # [1, S, S]

    @torch.no_grad()
    def prepare(self, jobs: list[Job]) -> Latents:
        x = torch.stack([self._seed_tensor(j) for j in jobs]).to(self.device)  # [N, 1, S, S]
        mu, logvar = self.vae.encode(x)
        if self.sample:
            n = torch.cat([torch.randn(1, *mu.shape[1:], generator=generator(*j.key, "vae-sample")) for j in jobs])
            f = mu + self.temperature * (0.5 * logvar).exp() * n.to(mu.device)
        else:
            f = mu
        return Latents(f=f * self.vae.scaling_factor)  # [N, 4, 7, 7], unit-variance latent space

    def decode(self, f: torch.Tensor, grad: bool = False) -> torch.Tensor:
        with torch.set_grad_enabled(grad):
            x = self.vae.decode(f.to(self.device).float() / self.vae.scaling_factor)  # [N, 1, S, S] in [0, 1]
            return x.expand(-1, 3, -1, -1)  # grey -> RGB, as the guidance model and the store expect
