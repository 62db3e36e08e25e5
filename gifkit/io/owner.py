"""Who owns an output folder, and what gifkit made in it.

One run writes into an output folder at a time; the processes of one sharded run share it. Three kinds of
hidden files at the folder's top say so:

* ``.gifkit.lock``, the *gate*: an advisory lock (the ``filelock`` package: ``flock`` on POSIX) held only for
  short sections: claiming or releasing the folder, merging ``metadata.csv``, recording a file in the
  manifest, clearing the folder. It stays in the folder (removing a lock file others may wait on would split
  them across two files).
* ``.gifkit-shard-<i>.lock`` and ``.gifkit-shard-<i>.json``, a *claim* (:class:`FolderClaim`): the lock is held
  by the process running shard ``i`` from the start of its run until it finishes (or exits: the operating
  system frees the lock of a process that dies); the JSON says who holds it (process id, host, start time,
  what runs, and the run's identity: its settings, class names and shard count). A claim whose lock is free,
  or whose process is gone on this host, is left by a run that died ("started and died"): it is removed and
  the folder is resumed. A held claim ("started and running") of another identity refuses the new run, as
  does a held claim of the same shard; the other shards of the same run are welcome.
* ``.gifkit-made.json``, the *manifest*: the BLAKE2b digests of the record files gifkit wrote there
  (:func:`write_own`) and the folders it created (:func:`make_own_dir`). :func:`gifkit.io.store.clear_store`
  deletes only what the manifest (or what it proves, e.g. the images a proven ``metadata.csv`` lists) shows
  gifkit made. A file is listed before it is written and its old digests dropped after, so a kill in between
  leaves it provable.

:func:`own_file` is the one check before gifkit reads back a file of its own output: a regular file, never a
symlink, FIFO or device.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import stat
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from filelock import FileLock, Timeout

from gifkit.errors import Damaged, Refused
from gifkit.io.files import atomic_write_bytes, make_dirs, pid_alive, read_json

__all__ = ["GATE", "MADE", "GATE_WAIT", "is_owner_file", "own_file", "digest", "folder_lock", "read_made",
           "write_own", "remove_own", "prune_made", "record_own", "make_own_dir", "FolderClaim", "live_claims", "remove_stale_claims"]

GATE = ".gifkit.lock"
MADE = ".gifkit-made.json"
GATE_WAIT = 600.0  # seconds to wait for the gate (held for seconds at most, unless a huge metadata.csv is merged)
_CLAIM = re.compile(r"\.gifkit-shard-(\d+)\.(lock|json)")
_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device"),
          (stat.S_ISBLK, "device"))


def is_owner_file(name: str) -> bool:
    """True for the names of the gate, the manifest and the claims."""
    return name in (GATE, MADE) or _CLAIM.fullmatch(name) is not None


def own_file(path: str | os.PathLike) -> Path | None:
    """``path`` when it is a regular file, ``None`` when there is none; :class:`~gifkit.errors.Refused` (naming
    it) for a symlink, a FIFO, a device or a folder: gifkit reads back only regular files it could have written
    (a symlink could lead anywhere, a FIFO would block the read forever)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(st.st_mode):
        return path
    if stat.S_ISLNK(st.st_mode):
        raise Refused(f"{path} is a symlink (to {os.readlink(path)}); gifkit does not read or write through "
                      f"symlinks inside an expansion folder: replace it by a real folder or file, or use "
                      f"another output folder")
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "special file")
    raise Refused(f"{path} is a {kind}, not a regular file; gifkit reads back only regular files it wrote: "
                  f"remove it and re-run")


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# ----------------------------------------------------------------------------- the gate

_GATES: dict[str, FileLock] = {}  # one lock object per folder and process, so the gate is re-entrant


@contextlib.contextmanager
def folder_lock(root: str | os.PathLike, timeout: float | None = None) -> Iterator[None]:
    """Hold the gate of ``root`` (created if missing; re-entrant within a process). A gate not free within
    ``timeout`` (default :data:`GATE_WAIT`) seconds raises :class:`~gifkit.errors.Refused`."""
    root = Path(root)
    own_file(root / GATE)  # never lock through a symlink
    key = os.path.realpath(root)
    lock = _GATES.get(key)
    if lock is None:
        lock = _GATES[key] = FileLock(str(root / GATE))
    wait = GATE_WAIT if timeout is None else timeout
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise Refused(f"{root / GATE} stayed locked for {wait:.0f} s: another gifkit process is working in "
                      f"{root}; wait for it to end, or use another output folder") from None
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------- the manifest


def read_made(root: str | os.PathLike) -> dict | None:
    """The manifest of ``root``: ``{"files": {name: [digest, ...]}, "folders": [relative path, ...]}``; ``None``
    when there is none or it is damaged (then nothing is proven)."""
    path = own_file(Path(root) / MADE)
    if path is None:
        return None
    try:
        made = read_json(path)
    except Damaged:
        return None
    ok = isinstance(made, dict) and isinstance(made.get("files"), dict) and isinstance(made.get("folders"), list)
    return made if ok else None


def _save_made(root: Path, made: dict) -> None:
    text = json.dumps(made, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(root / MADE, text.encode(), fsync=True)


def write_own(root: str | os.PathLike, name: str, data: bytes) -> None:
    """Write the record file ``root/name`` atomically, listing its digest in the manifest first (so that it is
    proven to be gifkit's at every moment) and dropping the digests of its older contents after."""
    root = Path(root)
    with folder_lock(root):
        made = read_made(root) or {"files": {}, "folders": []}
        new = digest(data)
        known = [d for d in made["files"].get(name, []) if isinstance(d, str)]
        if new not in known:
            made["files"][name] = known + [new]
            _save_made(root, made)
        atomic_write_bytes(root / name, data, fsync=True)
        if made["files"][name] != [new]:
            made["files"][name] = [new]
            _save_made(root, made)


def remove_own(root: str | os.PathLike, name: str) -> None:
    """Delete the record file ``root/name`` gifkit wrote, and its entry in the manifest."""
    root = Path(root)
    with folder_lock(root):
        (root / name).unlink(missing_ok=True)
        made = read_made(root)
        if made is not None and name in made["files"]:
            del made["files"][name]
            _save_made(root, made)


def prune_made(root: str | os.PathLike) -> None:
    """Drop from the manifest what no longer exists (deleting the manifest when nothing is left); the gate is
    held by the caller."""
    root = Path(root)
    made = read_made(root)
    if made is None:
        return
    made["files"] = {n: d for n, d in made["files"].items() if os.path.lexists(root / n)}
    made["folders"] = [f for f in made["folders"] if isinstance(f, str) and (root / f).is_dir()]
    if made["files"] or made["folders"]:
        _save_made(root, made)
    else:
        (root / MADE).unlink(missing_ok=True)


def record_own(root: str | os.PathLike, files: dict[str, bytes]) -> None:
    """List the digests of files gifkit wrote earlier (``{name: bytes}``) in the manifest, without writing them
    (a folder from before the manifest, adopted by a run that resumes it)."""
    root = Path(root)
    with folder_lock(root):
        made = read_made(root) or {"files": {}, "folders": []}
        for name, data in files.items():
            made["files"][name] = sorted({*made["files"].get(name, []), digest(data)})
        _save_made(root, made)


def make_own_dir(root: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Create ``folder`` (inside ``root``) when it is missing, listing it in the manifest as made by gifkit;
    an existing folder is left as it is (and not listed: it may be the user's)."""
    root, folder = Path(root), Path(folder)
    if folder.is_dir():
        return folder
    with folder_lock(root):
        if not folder.is_dir():
            made = read_made(root) or {"files": {}, "folders": []}
            rel = folder.relative_to(root).as_posix()
            if rel not in made["folders"]:
                made["folders"] = sorted(made["folders"] + [rel])
                _save_made(root, made)
            make_dirs(folder)
    return folder


# ----------------------------------------------------------------------------- claims


def _claim_paths(root: Path, index: int) -> tuple[Path, Path]:
    return root / f".gifkit-shard-{index}.lock", root / f".gifkit-shard-{index}.json"


def _claim_indices(root: Path) -> list[int]:
    try:
        names = os.listdir(root)
    except OSError:
        return []
    return sorted({int(m.group(1)) for m in map(_CLAIM.fullmatch, names) if m})


_CLAIMS: "weakref.WeakValueDictionary[tuple[str, int], FolderClaim]" = weakref.WeakValueDictionary()


def _probe(root: Path, index: int) -> tuple[dict, bool]:
    """``(the claim's JSON, whether its holder is alive)``; the gate is held. A free lock is a dead holder."""
    lock_path, info_path = _claim_paths(root, index)
    try:
        info = read_json(own_file(info_path) or info_path, {}, "a claim on the folder")
    except Damaged:
        info = {}
    info = info if isinstance(info, dict) else {}
    mine = _CLAIMS.get((os.path.realpath(root), index))
    if mine is not None and mine.held:
        return info, True
    if own_file(lock_path) is None:
        return info, False
    probe = FileLock(str(lock_path))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        same_host = info.get("host") == socket.gethostname()
        pid = info.get("pid")
        gone = same_host and isinstance(pid, int) and not pid_alive(pid)
        return info, not gone
    probe.release()
    return info, False


def live_claims(root: str | os.PathLike) -> list[dict]:
    """The claims on ``root`` whose holders are running (the gate must be held)."""
    root = Path(root)
    return [info for i in _claim_indices(root) for info, alive in [_probe(root, i)] if alive]


def remove_stale_claims(root: str | os.PathLike) -> list[dict]:
    """Remove the claims of runs that died (the gate must be held); returns what they said."""
    root = Path(root)
    stale = []
    for i in _claim_indices(root):
        info, alive = _probe(root, i)
        if not alive:
            for p in _claim_paths(root, i):
                p.unlink(missing_ok=True)
            stale.append(info)
    return stale


def _describe(info: dict) -> str:
    return (f"process {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"
            f"{', ' + str(info['what']) if info.get('what') else ''}")


class FolderClaim:
    """This process's claim on shard ``shard[0]`` of the output folder ``root``, held until :meth:`release`
    (see the module docstring). ``identity`` names the run (equal for the shards of one run); ``what`` says in
    messages what runs. Refused (:class:`~gifkit.errors.Refused`, naming the holder) while another run, or
    another process for the same shard, holds the folder. A claim this process left earlier in the same folder
    (a run that stopped with an exception before :meth:`release`) is taken over. ``stale``: the claims of runs
    that died, removed; ``peers``: the running processes of the same run (other shards)."""

    def __init__(self, root: str | os.PathLike, shard: Sequence[int] = (0, 1), identity: str = "",
                 what: str = ""):
        self.root, self.index, self.count = Path(root), int(shard[0]), int(shard[1])
        self.held = False
        make_dirs(self.root)
        key = (os.path.realpath(self.root), self.index)
        with folder_lock(self.root):
            for (folder, _), old in list(_CLAIMS.items()):
                if folder == key[0] and old.held:  # this process's earlier run here never finished
                    old._drop_files()
            self.stale = remove_stale_claims(self.root)
            self.peers = live_claims(self.root)
            for info in self.peers:
                if info.get("identity") != identity:
                    raise Refused(f"{self.root} is being written by another gifkit run ({_describe(info)}); two "
                                  f"runs in one folder would mix their images: wait until it ends, or give "
                                  f"another --out")
                if info.get("shard", [None])[0] == self.index:
                    raise Refused(f"shard {self.index} of this run is already being written into {self.root} "
                                  f"({_describe(info)}): wait until it ends, or give another --out")
            lock_path, info_path = _claim_paths(self.root, self.index)
            self._lock = FileLock(str(lock_path))
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                raise Refused(f"{lock_path} is locked by another process: wait until it ends, or give another "
                              f"--out") from None
            self.held = True
            info = {"pid": os.getpid(), "host": socket.gethostname(), "shard": [self.index, self.count],
                    "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), "what": what,
                    "identity": identity}
            atomic_write_bytes(info_path, (json.dumps(info, indent=1) + "\n").encode())
            _CLAIMS[key] = self

    def _drop_files(self) -> None:
        """Forget the claim: its files removed, its lock freed (the gate is held)."""
        if self.held:
            self.held = False
            for p in _claim_paths(self.root, self.index):
                p.unlink(missing_ok=True)
            self._lock.release(force=True)

    def release(self) -> None:
        """Give the folder up (idempotent)."""
        if self.held:
            with folder_lock(self.root):
                self._drop_files()

    def __del__(self) -> None:  # a run dropped without release: free the lock; its JSON then reads as stale
        if getattr(self, "held", False):
            with contextlib.suppress(Exception):
                self.held = False
                self._lock.release(force=True)

    def __repr__(self) -> str:
        return f"FolderClaim({str(self.root)!r}, shard {self.index}/{self.count}, held={self.held})"
