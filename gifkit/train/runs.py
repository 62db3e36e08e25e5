"""The one reader of a ``gifkit train`` run folder (``result.json`` + ``model.safetensors``).

:func:`load_run` rebuilds the trained network (a plain timm classifier, or an AMST network with its
auxiliary heads) with the evaluation transform it was tested with; evaluation, ALIA's confidence filter and
AMST's labelling of synthetic images all read runs through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from gifkit.errors import Damaged
from gifkit.io.files import read_json

__all__ = ["TrainedRun", "load_run"]


@dataclass
class TrainedRun:
    """A finished run: the network (eval mode, on its device), ``result.json``, the evaluation transform
    (PIL image -> normalised tensor) and the class names in label order."""

    model: torch.nn.Module
    result: dict
    transform: Callable
    classes: list[str]

    @torch.no_grad()
    def probs(self, images, batch_size: int = 64) -> torch.Tensor:
        """Softmax probabilities ``[N, C]`` (float32, CPU) of PIL images."""
        param = next(self.model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        out = []
        for s in range(0, len(images), batch_size):
            x = torch.stack([self.transform(im.convert("RGB")) for im in images[s:s + batch_size]])
            out.append(torch.softmax(self.model(x.to(device)).float(), -1).cpu())
        return torch.cat(out) if out else torch.zeros(0, len(self.classes))


def load_run(run: str | Path, device: str | torch.device = "cpu") -> TrainedRun:
    """The trained network of a run folder, on ``device``, in eval mode. A damaged ``result.json`` or
    ``model.safetensors`` raises :class:`~gifkit.errors.Damaged` naming the file (re-train, or restore it)."""
    from safetensors.torch import load_file

    from gifkit.models.classifiers import AMSTNet, create_model
    from gifkit.train.data import eval_transform

    run = Path(run)
    weights = run / "model.safetensors"
    if not (run / "result.json").is_file() or not weights.is_file():
        raise FileNotFoundError(f"{run} is not a finished `gifkit train` run: expected result.json and "
                                f"model.safetensors there (a multi-seed run keeps them in seed_<n>/)")
    result = read_json(run / "result.json", what="a training result")
    try:
        m = result["model"]
        if result.get("objective") == "amst":
            backbone = create_model(m["timm_name"], 0, pretrained=False)
            model = AMSTNet(backbone, backbone.num_features, m["num_classes"], result["amst"]["heads"])
        else:
            model = create_model(m["timm_name"], m["num_classes"], pretrained=False)
        transform = eval_transform(m["image_size"], m["mean"], m["std"],
                                   (result.get("settings") or {}).get("transforms", "gifkit"))
        classes = list(result["dataset"]["classes"])
    except (KeyError, TypeError) as e:
        raise Damaged(f"{run / 'result.json'} is damaged (no {e}); re-train the run, or restore the file") from e
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as e:  # noqa: BLE001  (safetensors' own errors, a wrong shape or key: a damaged file)
        raise Damaged(f"{weights} is damaged ({type(e).__name__}: {' '.join(str(e).split())[:200]}); re-train "
                      f"the run (gifkit train --no-resume), or restore the file") from e
    return TrainedRun(model.to(device).eval(), result, transform, classes)
