"""Command-line flags generated from dataclasses, so that flags, defaults and ``--help`` cannot drift apart.

A field declared with :func:`gifkit.config.option` becomes a flag of the same name (``steps_ratio`` ->
``--steps-ratio``) with its help, type (from the annotation: ``int``, ``float``, ``str``, ``list[...]``,
``bool``), choices and action. Every generated flag defaults to ``None`` on the command line, so
:func:`values` returns only what the user gave and the dataclass (or preset) supplies the rest.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing

__all__ = ["add_dataclass_args", "add_union_args", "values", "checked"]


def _flag_fields(cls, prefix: str = "", only=None, skip=()):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", False) or f.name in skip:
            continue
        if only is not None and f.name not in only:
            continue
        flag = meta.get("flag") or "--" + prefix + f.name.replace("_", "-")
        yield f, meta, hints[f.name], flag


def _base_type(hint):
    """``int | None`` -> ``(int, False)``; ``list[str]`` -> ``(str, True)``; ``bool`` -> ``(bool, False)``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return (args[0] if args and args[0] is not Ellipsis else str), True
    if origin is typing.Union or (origin is not None and type(None) in typing.get_args(hint)):
        return _base_type(args[0]) if len(args) == 1 else (str, False)
    return hint, False


def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING and f.default is not None and f.default != "":
        return f" (default {f.default})"
    return ""


def checked(typ, check, name: str):
    """An argparse ``type``: ``typ`` (int or float) of the text, then ``check`` (a
    :class:`gifkit.config.Check`); a failure becomes argparse's one-line usage error naming the flag."""
    def parse(text: str):
        try:
            return check(name, typ(text))
        except (TypeError, ValueError) as e:
            what = "an integer" if typ is int else "a number"
            raise argparse.ArgumentTypeError(str(e) if "must be" in str(e) else f"expected {what}, got {text!r}")
    parse.__name__ = typ.__name__
    return parse


def _add_flag(parser, f, meta, hint, flag, dest: str, shown: str) -> None:
    typ, many = _base_type(hint)
    if meta.get("action") in ("store_true", "store_false", "append"):
        shown = ""  # a switch: its help says what it does
    kw = dict(dest=dest, default=None, help=((meta.get("help") or "") + shown).replace("%", "%%"))
    action = meta.get("action")
    if action in ("store_true", "store_false"):
        kw["action"] = action
    elif action == "append":
        kw.update(action="append", metavar="KEY=VALUE")
    elif typ is bool:
        kw["action"] = argparse.BooleanOptionalAction
    else:
        kw["type"] = typ if typ in (int, float) else str
        if meta.get("check") is not None and typ in (int, float):
            kw["type"] = checked(typ, meta["check"], f.name)
        if many:
            kw["nargs"] = "+"
        if meta.get("choices"):
            kw["choices"] = list(meta["choices"])
    if meta.get("required"):
        kw["required"] = True
    parser.add_argument(flag, **kw)


def add_dataclass_args(parser, cls, *, prefix: str = "", only=None, skip=(), defaults: dict | None = None) -> None:
    """Add a flag for every :func:`~gifkit.config.option` field of ``cls`` to ``parser`` (or an argument group).

    ``prefix`` is put before the generated flag names (``amst-``); ``only`` / ``skip`` select fields;
    ``defaults`` overrides the default shown in the help (e.g. the profile a command defaults to).
    """
    for f, meta, hint, flag in _flag_fields(cls, prefix, only, skip):
        shown = f" (default {defaults[f.name]})" if defaults and f.name in defaults else _default_text(f)
        _add_flag(parser, f, meta, hint, flag, prefix.replace("-", "_") + f.name, shown)


def add_union_args(parser, configs: dict[str, type]) -> dict[str, list[str]]:
    """One flag per option across several dataclasses (``{owner: class}``, e.g. every method's config): the
    first declaration gives the flag, type and help; the help lists the owners and their defaults where they
    differ. Returns ``{field name: [owners that have it]}``."""
    owners: dict[str, list[str]] = {}
    first: dict[str, tuple] = {}
    defaults: dict[str, dict[str, object]] = {}
    for owner, cls in configs.items():
        for f, meta, hint, flag in _flag_fields(cls):
            owners.setdefault(f.name, []).append(owner)
            first.setdefault(f.name, (f, meta, hint, flag))
            if f.default is not dataclasses.MISSING:
                defaults.setdefault(f.name, {})[owner] = f.default
    for name, (f, meta, hint, flag) in first.items():
        who = owners[name]
        shown = f" [{', '.join(who)}]" if len(who) < len(configs) else ""
        values = {v for v in defaults.get(name, {}).values()}
        if len(values) == 1 and None not in values and "" not in values:
            shown = f" (default {values.pop()})" + shown
        elif len(values) > 1:
            shown = " (default " + ", ".join(f"{o} {v}" for o, v in defaults[name].items() if v is not None) + ")" + shown
        _add_flag(parser, f, meta, hint, flag, name, shown)
    return owners


def values(args: argparse.Namespace, cls, *, prefix: str = "", only=None, skip=()) -> dict:
    """``{field: value}`` of the ``cls`` flags the user gave (``None`` = not given), converted as declared."""
    out = {}
    for f, meta, _, _ in _flag_fields(cls, prefix, only, skip):
        v = getattr(args, prefix.replace("-", "_") + f.name, None)
        if v is None:
            continue
        convert = meta.get("convert")
        out[f.name] = convert(v) if convert is not None else v
    return out
