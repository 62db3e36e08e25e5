"""What every expansion method is, the registry of methods by name, and the one factory.

An expansion method (:class:`ExpansionMethod`) is a class in its own file of :mod:`gifkit.methods`, registered
under its name by :func:`register`, with its settings beside it: a :class:`MethodConfig` dataclass whose fields
are the method's options (each one a ``gifkit expand`` flag, :func:`gifkit.config.option`) and whose defaults
are the method's defaults; ``profile_defaults`` change some of them per profile (fewer sampler steps on the
smoke profile, say) and a method with per-dataset settings applies a ``preset``. :meth:`MethodConfig.resolve`
merges them once, in this order: field defaults, the profile's, the preset's, the caller's.

The driver (:func:`gifkit.methods.driver.expand`) calls a method in a fixed order: :meth:`~ExpansionMethod.begin`
(work before the first image, e.g. ALIA's captions; returns the folder the images go to), then the method itself
on each batch of jobs (seed x variant), which returns a :class:`Created`, then :meth:`~ExpansionMethod.end`
(work after the last image, e.g. ALIA's filters). :func:`create_method` is the one documented factory.
"""
from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import torch
from PIL import Image

from gifkit.config import DEFAULT_RATIO, check_fields, get_profile
from gifkit.core.prior import Job

__all__ = ["MethodConfig", "Created", "RunContext", "ExpansionMethod", "METHODS", "register", "get_method",
           "method_names", "create_method", "option_names", "config_values"]


@dataclass
class MethodConfig:
    """Base of every method's settings. Subclasses add fields with :func:`gifkit.config.option` and may set
    ``profile_defaults`` (``{profile: {field: value}}``) and ``presets`` (``{name: {field: value}}``, the fields a
    named preset sets; a ``preset`` field selects one)."""

    profile_defaults: ClassVar[dict[str, dict]] = {}
    presets: ClassVar[dict[str, dict]] = {}

    def __post_init__(self):
        check_fields(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def resolve(cls, profile: str, method: str = "", **options) -> "MethodConfig":
        """The config of ``profile`` with ``options`` (``None`` values mean "not given"): field defaults, then
        :attr:`profile_defaults`, then the preset named by ``options["preset"]``, then ``options``. An option the
        method does not have raises ``ValueError`` naming it and the method's options."""
        options = {k: v for k, v in options.items() if v is not None}
        unknown = sorted(set(options) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"{method or cls.__name__}: unknown option(s) {', '.join(unknown)}; its options: "
                             f"{', '.join(cls.field_names())}")
        values = dict(cls.profile_defaults.get(get_profile(profile).name, {}))
        preset = options.get("preset")
        if preset is not None:
            if preset not in cls.presets:
                raise ValueError(f"unknown preset {preset!r}; known: {', '.join(cls.presets)}")
            values.update({k: v for k, v in cls.presets[preset].items() if k in cls.field_names()})
        values.update(options)
        return cls(**values)


@dataclass
class Created:
    """What a method returns for one batch: ``images`` of the ``jobs`` it made (a tensor ``[N, 3, R, R]`` in
    [0, 1] or PIL images, in ``jobs`` order), one metadata ``rows`` entry per job (the method's columns),
    ``skipped`` seeds it could not expand (``(index, reason)``; their jobs are not in ``jobs``) and the
    ``seconds`` it spent per stage."""

    jobs: list[Job]
    images: torch.Tensor | list[Image.Image]
    rows: list[dict]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RunContext:
    """One expansion run as the driver hands it to :meth:`ExpansionMethod.begin` / :meth:`~ExpansionMethod.end`."""

    out: Path
    dataset: Any
    class_names: list[str]
    ratio: int
    seed: int
    limit: int | None = None
    batch_size: int | None = None
    output_size: int | None = None
    shard: tuple[int, int] = (0, 1)
    barrier: Callable[[], None] | None = None
    progress: bool = True

    def sync(self) -> None:
        """Wait for every shard (no-op without a barrier)."""
        if self.barrier is not None:
            self.barrier()


class ExpansionMethod(abc.ABC):
    """Base class of the expansion methods: a registered name, a config, and a call on a batch of jobs.

    Subclasses set ``Config`` (a :class:`MethodConfig`), ``summary`` (one line for ``--help``), optionally
    ``profiles`` (where it runs; ``None``: every profile), ``default_batch_size`` and ``stages`` (the timing
    keys of its :class:`Created`), and implement ``__call__``. ``name`` is set by :func:`register`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    profiles: ClassVar[tuple[str, ...] | None] = None
    default_batch_size: ClassVar[int] = 4
    stages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: MethodConfig, class_names: Sequence[str], *, profile: str = "smoke",
                 device: str | torch.device | None = None):
        if not isinstance(config, self.Config):
            raise TypeError(f"{self.name}: config must be a {self.Config.__name__}, got {type(config).__name__}")
        if isinstance(class_names, str) or not list(class_names):
            raise ValueError(f"{self.name}: class_names must be a non-empty list of names")
        prof = get_profile(profile).name
        if self.profiles is not None and prof not in self.profiles:
            raise ValueError(f"method {self.name!r} runs on the {' and '.join(self.profiles)} profile(s), "
                             f"not {prof!r}")
        self.config, self.class_names, self.profile = config, [str(c) for c in class_names], prof
        self.device = torch.device(device) if device is not None else self.default_device()

    @staticmethod
    def default_device() -> torch.device:
        """The device when the caller names none."""
        return torch.device("cpu")

    @classmethod
    def from_profile(cls, class_names: Sequence[str], *, profile: str = "smoke",
                     device: str | torch.device | None = None, **options) -> "ExpansionMethod":
        """The method on ``profile`` (tiny random models on ``smoke``, real checkpoints on ``paper``) with
        ``options`` (fields of its ``Config``) over its defaults (:meth:`MethodConfig.resolve`)."""
        return cls(cls.Config.resolve(profile, cls.name, **options), class_names, profile=profile, device=device)

    def replace(self, **options) -> "ExpansionMethod":
        """The same method with other options (``None``: keep); rebuilds what they change."""
        values = {**config_values(self.config), **{k: v for k, v in options.items() if v is not None}}
        return type(self)(self.Config.resolve(self.profile, self.name, **values), self.class_names,
                          profile=self.profile, device=self.device)

    # ------------------------------------------------------------------ what the driver reads

    @property
    def default_ratio(self) -> int:
        """K when the caller gives none (a preset's ratio where the method has presets)."""
        return DEFAULT_RATIO

    def auto_batch_size(self, ratio: int) -> int:
        """Seeds per batch for ``batch_size="auto"`` (memory-sized where the method knows its memory)."""
        return self.default_batch_size

    @classmethod
    def folders(cls, out: str | Path) -> list[Path]:
        """The folders a run into ``out`` writes (what ``--force-new`` clears)."""
        return [Path(out)]

    @abc.abstractmethod
    def record(self) -> dict:
        """The method's settings in ``run.json`` (``params``, ``guidance``, ...); a resume must match them."""

    @abc.abstractmethod
    def environment(self) -> dict:
        """The condition the method's bytes depend on (:func:`gifkit.io.runs.run_environment`)."""

    def begin(self, run: RunContext) -> Path:
        """Work before the first batch; returns the folder the images go to (default: ``run.out``)."""
        return run.out

    @abc.abstractmethod
    def __call__(self, jobs: list[Job]) -> Created:
        """Create the images of ``jobs`` (seed-major: K consecutive jobs per seed)."""

    def end(self, run: RunContext, result):
        """Work after the last batch (every shard is done); returns what :func:`~gifkit.methods.driver.expand`
        returns (default: ``result``)."""
        return result


def config_values(config) -> dict:
    """``{field: value}`` of a config, the values as they are (not copied: a dataset stays the same object)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


METHODS: dict[str, type[ExpansionMethod]] = {}


def register(name: str) -> Callable[[type[ExpansionMethod]], type[ExpansionMethod]]:
    """Class decorator: register an :class:`ExpansionMethod` under ``name``; a taken name raises ``ValueError``."""
    def add(cls: type[ExpansionMethod]) -> type[ExpansionMethod]:
        if name in METHODS or name == "original":
            raise ValueError(f"method name {name!r} is taken; register under another name")
        if not (isinstance(cls, type) and issubclass(cls, ExpansionMethod)):
            raise TypeError(f"register({name!r}) decorates an ExpansionMethod subclass, got {cls!r}")
        cls.name = name
        METHODS[name] = cls
        return cls
    return add


def get_method(name: str) -> type[ExpansionMethod]:
    """The registered method class ``name``; a clear error listing the known ones otherwise."""
    if name == "original":
        raise ValueError("method 'original' means no expansion; nothing to expand")
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None


def method_names() -> list[str]:
    """Registered method names, in registration order."""
    return list(METHODS)


def option_names(name: str) -> list[str]:
    """The options (config fields) method ``name`` takes."""
    return get_method(name).Config.field_names()


def create_method(name: str, class_names: Sequence[str], *, profile: str = "smoke",
                  device: str | torch.device | None = None, **options) -> ExpansionMethod:
    """The expansion method ``name`` for a dataset with ``class_names``, built for ``profile``.

    ``profile``: ``"smoke"`` (tiny random models of the real classes, seconds on a CPU), ``"mini"`` (the VAE
    arms), ``"colab"`` or ``"paper"`` (real checkpoints; a local folder works as ``model_id``). ``options``: the
    method's settings (its ``Config`` fields, e.g. ``preset="cifar100s"``, ``eps=0.5``, ``steps=30``); an option
    it does not have raises ``ValueError``. ``device``: default the best one available for real models.
    Run it with :func:`gifkit.methods.driver.expand`.
    """
    return get_method(name).from_profile(class_names, profile=profile, device=device, **options)
