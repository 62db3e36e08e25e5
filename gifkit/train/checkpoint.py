"""Training checkpoints that a kill cannot damage, made of tensors and JSON only (no pickles).

A run's checkpoint is the folder ``<run>/checkpoint/``:

    model.safetensors                    the model's weights
    optimizer.safetensors, .json         the optimizer's state: its tensors, and the rest as JSON
    scaler.json                          the fp16 gradient scaler's state (mixed precision fp16 only)
    rng_<rank>.safetensors, .json        each process's random states: torch's CPU (and CUDA) generator as
                                         uint8 tensors, Python's ``random`` and NumPy's global state as JSON
    state.json                           epoch, history, the run's settings, the size and BLAKE2b digest
                                         of every other file (written last), and the digest of its own
                                         content (``state_digest``), so a changed digit is caught too

:func:`save_checkpoint` writes it into ``.checkpoint.tmp/`` beside it and swaps it in with
:func:`gifkit.io.files.replace_dir`, so a kill at any moment leaves the previous complete checkpoint (or
the new one). :func:`load_checkpoint` checks every file against ``state.json`` before loading anything; a
checkpoint that is damaged anyway (a disk error, a hand edit, a format gifkit no longer writes) is
reported as "checkpoint at X is damaged (...)" with the way out (``--no-resume`` or deleting it), never a
traceback. Nothing here unpickles: safetensors and JSON only.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gifkit.errors import Damaged
from gifkit.io.files import atomic_write_bytes, make_dirs, read_json, recover_dir, replace_dir
from gifkit.io.runs import normalized, settings_diff

__all__ = ["STATE_FILE", "state_digest", "save_checkpoint", "load_checkpoint", "to_tensors_and_json", "from_tensors_and_json"]

STATE_FILE = "state.json"
_RESTART = "re-run with --no-resume (resume=False) to start over, or delete it"


def to_tensors_and_json(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """``obj`` (nested dicts, lists, tuples, numbers, strings, tensors) as JSON, each tensor moved into
    ``tensors`` under a key of its position and replaced by ``{"__tensor__": key}``; dicts with keys that are
    not all strings become ``{"__items__": [[key, value], ...]}``, tuples ``{"__tuple__": [...]}``."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().clone().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: to_tensors_and_json(v, tensors, f"{prefix}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, to_tensors_and_json(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [to_tensors_and_json(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def from_tensors_and_json(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`to_tensors_and_json`."""
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__items__"}:
            return {k: from_tensors_and_json(v, tensors) for k, v in obj["__items__"]}
        if set(obj) == {"__tuple__"}:
            return tuple(from_tensors_and_json(v, tensors) for v in obj["__tuple__"])
        return {k: from_tensors_and_json(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_tensors_and_json(v, tensors) for v in obj]
    return obj


def _write(folder: Path, name: str, data: bytes) -> None:
    atomic_write_bytes(folder / name, data, fsync=True)


def _write_split(folder: Path, stem: str, obj: Any) -> None:
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    structure = to_tensors_and_json(obj, tensors)
    _write(folder, f"{stem}.safetensors", save(tensors))
    _write(folder, f"{stem}.json", json.dumps(structure).encode())


def _read_split(folder: Path, stem: str) -> Any:
    from safetensors.torch import load

    tensors = load((folder / f"{stem}.safetensors").read_bytes())
    return from_tensors_and_json(json.loads((folder / f"{stem}.json").read_text()), tensors)


def _rng_state(device: torch.device) -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "python": [py_state[0], list(py_state[1]), py_state[2]]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_digest(record: dict) -> str:
    """The BLAKE2b digest of a ``state.json`` record without its ``state_digest`` (keys sorted, as JSON)."""
    body = {k: v for k, v in record.items() if k != "state_digest"}
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=16).hexdigest()


def _tmp(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.tmp")


def save_checkpoint(acc, folder: str | Path, model, optimizer, state: dict) -> None:
    """Write the checkpoint of ``model`` (unwrapped), ``optimizer``, the gradient scaler and every process's
    random states, with ``state`` (epoch, history, ``config``: the run's settings) as ``state.json``, into
    ``.<folder>.tmp`` and swap it in for ``folder`` (see the module docstring). Every process calls this."""
    from safetensors.torch import save

    folder = Path(folder)
    tmp = _tmp(folder)
    main = acc.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        make_dirs(tmp)
    acc.wait_for_everyone()
    _write_split(tmp, f"rng_{acc.process_index}", _rng_state(acc.device))
    if main:
        weights = {k: v.detach().cpu().contiguous() for k, v in acc.unwrap_model(model).state_dict().items()}
        _write(tmp, "model.safetensors", save(weights))
        _write_split(tmp, "optimizer", optimizer.state_dict())
        scaler = getattr(acc, "scaler", None)
        if scaler is not None:
            _write(tmp, "scaler.json", json.dumps(scaler.state_dict()).encode())
    acc.wait_for_everyone()
    if main:
        files = {p.name: {"size": p.stat().st_size, "blake2b": _digest(p)} for p in sorted(tmp.iterdir())}
        record = normalized({**state, "processes": acc.num_processes, "files": files})
        record["state_digest"] = state_digest(record)
        _write(tmp, STATE_FILE, (json.dumps(record, indent=1) + "\n").encode())
        replace_dir(tmp, folder)
    acc.wait_for_everyone()


def load_checkpoint(acc, folder: str | Path, model, optimizer, config: dict,
                    hint: str = "use another --out, or --no-resume to start over") -> dict | None:
    """Restore the checkpoint at ``folder`` into ``model``, ``optimizer``, the scaler and this process's random
    states, and return its ``state.json``; ``None`` when there is none. A checkpoint of other settings
    (``config``) raises ``ValueError`` naming them and ``hint``; a damaged one raises
    :class:`~gifkit.errors.Damaged` ("checkpoint at X is damaged (why); re-run with --no-resume ...").
    A swap cut short by a kill is completed first. Every process calls this."""
    from safetensors.torch import load

    folder = Path(folder)
    if acc.is_main_process:
        recover_dir(folder)
        shutil.rmtree(_tmp(folder), ignore_errors=True)  # a save that a kill cut short: never complete
    acc.wait_for_everyone()
    if not folder.exists():
        return None

    def damaged(why: str) -> Damaged:
        return Damaged(f"checkpoint at {folder} is damaged ({why}); {_RESTART}")

    if not folder.is_dir() or not (folder / STATE_FILE).is_file():
        raise damaged(f"no {STATE_FILE}")
    try:
        state = read_json(folder / STATE_FILE)
    except ValueError:
        raise damaged(f"{STATE_FILE} is not valid JSON") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise damaged(f"{STATE_FILE} does not hold a checkpoint record")
    if "state_digest" in state and state_digest(state) != state["state_digest"]:
        raise damaged(f"{STATE_FILE} differs from what was written (its digest does not match)")
    new = normalized(config)
    if state["config"] != new:
        diff = settings_diff(state["config"], new)
        raise ValueError(f"{folder / STATE_FILE} records a training checkpoint made with other settings "
                         f"({', '.join(diff)} differ); {hint}")
    files = state.get("files")
    if not isinstance(files, dict):
        raise damaged("written by an older gifkit in accelerate's format, with pickles, which gifkit no longer "
                      "loads")
    if "state_digest" not in state:
        raise damaged(f"{STATE_FILE} has no digest of its own content (written by an older gifkit, or edited)")
    if state.get("processes") != acc.num_processes:
        raise ValueError(f"checkpoint at {folder} was written by {state.get('processes')} processes, this run has "
                         f"{acc.num_processes}: resume with as many, or {_RESTART}")
    rank = f"rng_{acc.process_index}"
    mine = ["model.safetensors", "optimizer.safetensors", "optimizer.json", f"{rank}.safetensors", f"{rank}.json"]
    for name in sorted(set(mine) | (set(files) if acc.is_main_process else set())):
        path = folder / name
        want = files.get(name)
        if want is None or not path.is_file():
            raise damaged(f"{name} is missing")
        if path.stat().st_size != want.get("size") or _digest(path) != want.get("blake2b"):
            raise damaged(f"{name} differs from what was written")
    try:
        weights = load((folder / "model.safetensors").read_bytes())
        acc.unwrap_model(model).load_state_dict(weights)
        optimizer.load_state_dict(_read_split(folder, "optimizer"))
        scaler = getattr(acc, "scaler", None)
        if scaler is not None and (folder / "scaler.json").is_file():
            scaler.load_state_dict(json.loads((folder / "scaler.json").read_text()))
        _set_rng_state(_read_split(folder, rank), acc.device)
    except Exception as e:  # noqa: BLE001  (any failure to restore means a damaged checkpoint)
        raise damaged(f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from e
    return state
