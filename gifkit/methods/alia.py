"""ALIA: Automated Language-guided Image Augmentation (Dunlap et al., NeurIPS 2023, arXiv 2305.16289).

The pipeline, as in the paper (§3) and its official code:

(a), (b) **Captions and domain descriptions** (:mod:`gifkit.methods.alia_text`): BLIP captions of the training
    images summarised by a text-generation model into at most 10 descriptions of their domains ("in the snow"),
    or descriptions the user gives. Done in :meth:`ALIA.begin`, before the first image.
(c) **Edits.** Each seed is edited K times with prompts such as "a photo of a {class} {description}": SD v1.5
    img2img (strength 0.6, guidance 7.5) or InstructPix2Pix (image guidance 1.2, text guidance 5)
    (:class:`gifkit.priors.alia.ALIAPrior`). The driver writes every edit into a *candidates* store.
(d), (e) **Filters and output** (:mod:`gifkit.methods.alia_filters`): a semantic filter (CLIP ViT-L/14) and a
    confidence filter (a classifier trained on the original data), applied in :meth:`ALIA.end`, after the last
    edit; the kept edits are written to the output folder.

Layout of a run into ``OUT``::

    OUT/                    the ALIA expansion: <class>/<seed>_<variant>.png, metadata.csv (kept edits, with
                            filter columns), classes.json, alia.json (descriptions, thresholds, counts),
                            alia_filter.csv (every candidate with its decisions)
    OUT.alia/candidates/    every edit before filtering (a store of its own: "ALIA without filtering")
    OUT.alia/classifier/    the confidence filter's classifier (a `gifkit train` run folder)
    OUT.alia/captions.csv, OUT.alia/descriptions.json   steps (a) and (b), reused on a re-run
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gifkit.config import ALIA_SEMANTIC_CLIP, MODEL_IDS, Check, get_profile, option
from gifkit.io.datasets import data_folders
from gifkit.io.files import read_json, write_json
from gifkit.io.runs import check_output_folder
from gifkit.methods.alia_filters import ALIA_JSON, FILTER_CSV, FILTERS, THRESHOLD_BY, filter_expansion, \
    train_filter_classifier
from gifkit.methods.alia_text import DESCRIPTIONS_JSON, cached_captions, cached_descriptions, free_memory, \
    load_descriptions
from gifkit.methods.base import Created, ExpansionMethod, MethodConfig, RunContext, register
from gifkit.methods.gif import CheckpointOptions, ClipGuideOptions, Imagination, checkpoint_dtype
from gifkit.priors.alia import EDITORS, ALIAPrior, check_descriptions

__all__ = ["EDITOR_DEFAULTS", "ALIAConfig", "ALIAResult", "ALIAEdits", "ALIA"]

# ALIA's editors: img2img strength 0.6 and text guidance 7.5, the settings of the edit folders the official configs
# train on (the official editing script's default guidance is 5: docs/design.md §2); InstructPix2Pix text guidance
# 5 and image guidance 1.2, the official defaults
EDITOR_DEFAULTS = {"img2img": dict(strength=0.6, guidance_scale=7.5),
                   "instruct": dict(strength=1.0, guidance_scale=5.0, image_guidance_scale=1.2)}


@dataclass
class ALIAConfig(MethodConfig, CheckpointOptions, ClipGuideOptions):
    """ALIA's settings. ``clip_model`` / ``clip_pretrained`` choose its semantic filter's CLIP (default the official
    ViT-L/14); ``data`` / ``split`` / ``data_root`` / ``data_kwargs`` say where the original data is, for the
    confidence filter's classifier (``gifkit expand`` fills them from ``--data``)."""

    descriptions: list[str] | None = option(None, "domain descriptions (default: BLIP captions summarised by a "
                                                  "text-generation model)")
    descriptions_file: str | None = option(None, "domain descriptions, one per line (or a JSON list)")
    editor: str = option("img2img", "SD img2img or InstructPix2Pix", choices=EDITORS)
    template: str | None = option(None, "the edit prompt with {class} and {description} (default: the editor's)")
    steps: int = option(50, "sampler steps of the editor (smoke profile 10, colab 20)",
                        check=Check(1, 10_000, integer=True))
    strength: float | None = option(None, "img2img strength (default 0.6)", check=Check(0, 1, lo_open=True))
    guidance_scale: float | None = option(None, "text guidance of the editor (default: img2img 7.5, "
                                                "InstructPix2Pix 5)", check=Check(0))
    image_guidance_scale: float | None = option(None, "InstructPix2Pix image guidance (default 1.2)", check=Check(0))
    captioner_id: str | None = option(None, "hub id or local folder of the BLIP captioner")
    llm_id: str | None = option(None, "hub id or local folder of the text-generation model")
    filter: str = option("both", "filters applied to the edits", flag="--alia-filter", choices=FILTERS)
    filter_classifier: str | None = option(None, "a finished `gifkit train` run for the confidence filter "
                                                 "(default: train one on the original data)")
    threshold_by: str = option("label", "the confidence filter's threshold: the edit's label's (the official "
                                        "filter) or its predicted class's", flag="--alia-threshold-by",
                               choices=THRESHOLD_BY)
    data: str | None = option(None, "the original data (name or folder) the filter's classifier trains on", cli=False)
    split: str = option("train", "its split", cli=False)
    data_root: str | None = option(None, "where a named dataset's files are", cli=False)
    data_kwargs: dict | None = option(None, "the dataset loader's options", cli=False)

    profile_defaults = {"smoke": {"steps": 10}, "colab": {"steps": 20}}

    def __post_init__(self):
        super().__post_init__()
        if self.descriptions is not None and self.descriptions_file is not None:
            raise ValueError("give descriptions or descriptions_file, not both")


@dataclass
class ALIAResult:
    """What an ALIA run returns: the expansion of the candidates and the filtering."""

    out: Path
    candidates: Path
    descriptions: list[str]
    expand: Any  # the candidates' gifkit.methods.driver.ExpandResult (this process's share)
    decisions: pd.DataFrame | None = None  # every candidate with its decisions (process 0)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def n_kept(self) -> int:
        return int(self.decisions["kept"].sum()) if self.decisions is not None else 0

    @property
    def written(self) -> int:
        return self.expand.written

    @property
    def existing(self) -> int:
        return self.expand.existing

    @property
    def skipped(self) -> list:
        return self.expand.skipped

    def summary(self) -> str:
        lines = [f"ALIA: {len(self.descriptions)} domain descriptions: " + "; ".join(self.descriptions),
                 "candidates: " + self.expand.summary().replace("\n", "\n  ")]
        if self.decisions is not None:
            d = self.decisions
            lines.append(f"filter '{d['alia_filter'].iloc[0] if len(d) else '-'}': kept {self.n_kept} of {len(d)} "
                         f"edits in {self.out} (semantic drops {int((d['semantic_keep'] == 0).sum())}, too easy "
                         f"{int((d['conf_decision'] == 'too_easy').sum())}, mislabeled "
                         f"{int((d['conf_decision'] == 'mislabeled').sum())}); every decision in "
                         f"{self.out / FILTER_CSV}")
        lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        return "\n".join(lines)


class ALIAEdits(Imagination):
    """Step (c): the language-guided edits of the seeds, an unguided imagination with :class:`ALIAPrior` (the
    default CLIP scores the edits for the metadata)."""

    Config = ALIAConfig
    guided = False

    def __init__(self, config: ALIAConfig, class_names, descriptions, **kwargs):
        self.descriptions = check_descriptions(descriptions)
        super().__init__(config, class_names, **kwargs)

    def build_prior(self) -> ALIAPrior:
        from gifkit.models import hub, tiny

        cfg, tiny_profile = self.config, get_profile(self.profile).tiny
        d = EDITOR_DEFAULTS[cfg.editor]
        dtype = checkpoint_dtype(self.profile, self.device, cfg.dtype)
        if cfg.editor == "instruct":
            pipe = tiny.tiny_instruct_pix2pix() if tiny_profile else hub.load_instruct_pix2pix(
                cfg.model_id or MODEL_IDS["ip2p"], torch_dtype=dtype)
        else:
            pipe = tiny.tiny_sd() if tiny_profile else hub.load_sd(cfg.model_id or MODEL_IDS["sd15"], torch_dtype=dtype)
        return ALIAPrior(pipe, self.descriptions, editor=cfg.editor, template=cfg.template, steps=cfg.steps,
                         strength=cfg.strength if cfg.strength is not None else d["strength"],
                         guidance_scale=cfg.guidance_scale if cfg.guidance_scale is not None else d["guidance_scale"],
                         image_guidance_scale=cfg.image_guidance_scale if cfg.image_guidance_scale is not None
                         else EDITOR_DEFAULTS["instruct"]["image_guidance_scale"], device=self.device)

    def build_guide(self):
        from gifkit.models.guides import zero_shot_classifier

        return zero_shot_classifier(self.profile, self.class_names, self.device)


@register("alia")
class ALIA(ExpansionMethod):
    """ALIA end to end: descriptions (:meth:`begin`), edits (each batch), filters (:meth:`end`)."""

    summary = ("ALIA: captions -> LLM domain descriptions -> SD img2img / InstructPix2Pix edits -> semantic + "
               "confidence filters")
    Config = ALIAConfig
    profiles = ("smoke", "paper", "colab")
    stages = Imagination.stages

    def __init__(self, config, class_names, *, profile="smoke", device=None):
        super().__init__(config, class_names, profile=profile, device=device)
        self.edits: ALIAEdits | None = None
        self.info: dict = {}
        self.seconds: dict[str, float] = {}
        self._t = 0.0

    @staticmethod
    def default_device():
        from gifkit.models.hub import best_device

        return best_device()

    @staticmethod
    def work_folder(out: str | Path) -> Path:
        """``OUT.alia``: the candidates, the filter's classifier and the cached steps (a) and (b)."""
        out = Path(out)
        return out.with_name(out.name + ".alia")

    @classmethod
    def folders(cls, out):
        return [Path(out), cls.work_folder(out) / "candidates"]

    def _edits(self) -> ALIAEdits:
        if self.edits is None:
            raise RuntimeError("ALIA: run it with gifkit.methods.expand (its descriptions come first)")
        return self.edits

    def record(self) -> dict:
        return self._edits().record()

    def environment(self) -> dict:
        return self._edits().environment()

    def begin(self, run: RunContext) -> Path:
        """Steps (a) and (b) (shard 0; every shard then reads the descriptions), then the editor."""
        cfg, work = self.config, self.work_folder(run.out)
        for folder in (run.out, work):  # the candidates' run checks its own folder
            check_output_folder(folder, data_folders(run.dataset))
        t, self.seconds = time.perf_counter(), {}
        if cfg.descriptions is not None:
            info = {"source": "user", "descriptions": check_descriptions(cfg.descriptions)}
        elif cfg.descriptions_file is not None:
            info = {"source": f"file:{cfg.descriptions_file}", "descriptions": load_descriptions(cfg.descriptions_file)}
        else:
            work.mkdir(parents=True, exist_ok=True)
            if run.shard[0] == 0:
                captions = cached_captions(run.dataset, work, self.profile, cfg.captioner_id, self.device)
                self.seconds["captions"] = time.perf_counter() - t
                cached_descriptions(captions, work, self.profile, cfg.llm_id, self.device, run.seed)
            run.sync()
            info = read_json(work / DESCRIPTIONS_JSON, what="ALIA's descriptions")
        self.info = info
        self.seconds["descriptions"] = time.perf_counter() - t
        self._t = time.perf_counter()
        self.edits = ALIAEdits(cfg, self.class_names, info["descriptions"], profile=self.profile, device=self.device)
        return work / "candidates"

    def __call__(self, jobs) -> Created:
        return self._edits()(jobs)

    def end(self, run: RunContext, result) -> ALIAResult:
        """Steps (d) and (e) on shard 0 once every edit is made: the filters, the kept edits into ``run.out``."""
        cfg, work, index = self.config, self.work_folder(run.out), run.shard[0]
        params = dict(self._edits().prior.params)
        self.edits = None  # the editor's memory back before the filters' models load
        free_memory(self.device)
        self.seconds["edits"] = time.perf_counter() - self._t
        t = time.perf_counter()
        classifier, trained = None, None
        if cfg.filter in ("both", "confidence"):
            if cfg.filter_classifier:
                trained = Path(cfg.filter_classifier)
            elif cfg.data is None:
                raise ValueError("ALIA's confidence filter trains a classifier on the original data: give data= (its "
                                 "name or folder) or filter_classifier= (a finished `gifkit train` run)")
            else:
                trained = train_filter_classifier(cfg.data, work / "classifier", profile=self.profile,
                                                  split=cfg.split, data_root=cfg.data_root,
                                                  data_kwargs=cfg.data_kwargs, seed=run.seed,
                                                  progress=run.progress and index == 0)
            if index == 0:
                from gifkit.train.runs import load_run

                classifier = load_run(trained, self.device)
        decisions = None
        candidates = work / "candidates"
        semantic_clip = (cfg.clip_model or ALIA_SEMANTIC_CLIP[0], cfg.clip_pretrained or ALIA_SEMANTIC_CLIP[1])
        if index == 0:
            from gifkit.models.guides import guide_clip

            run.out.mkdir(parents=True, exist_ok=True)
            info = self.info
            meta = {"method": "alia", "paper": "arXiv 2305.16289", "data": cfg.data, "split": cfg.split,
                    "profile": self.profile, "ratio": run.ratio, "seed": run.seed, "editor": cfg.editor,
                    "params": params, "candidates": str(candidates),
                    "descriptions": info["descriptions"], "descriptions_source": info["source"],
                    **({"captions_sample": info.get("sample"), "llm_output": info.get("output")}
                       if info["source"].startswith("llm") else {}),
                    "filter_classifier": str(trained) if trained is not None else None,
                    "threshold_by": cfg.threshold_by,
                    "semantic_clip": "tiny" if get_profile(self.profile).tiny else list(semantic_clip)}
            old = read_json(run.out / ALIA_JSON, {}, "ALIA's record")
            write_json(run.out / ALIA_JSON, {**old, **meta})
            sem = guide_clip(self.profile, self.device, *semantic_clip) if cfg.filter in ("both", "semantic") else None
            decisions = filter_expansion(candidates, run.out, original=run.dataset, filter=cfg.filter,
                                         clip_model=sem.model if sem else None,
                                         clip_tokenizer=sem.tokenizer if sem else None, classifier=classifier,
                                         threshold_by=cfg.threshold_by)
        self.seconds["filter"] = time.perf_counter() - t
        run.sync()
        return ALIAResult(out=run.out, candidates=candidates, descriptions=list(self.info["descriptions"]),
                          expand=result, decisions=decisions, seconds=dict(self.seconds))

