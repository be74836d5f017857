"""Output folders and files: ownership, atomic placement, leftovers of killed runs, the umask.

One mechanism for every command that writes results:

* **Ownership.** A folder bayesmages writes holds a marker ``.bayesmages.json`` listing every file
  bayesmages wrote there (paths relative to the folder). An existing output folder without a marker
  that holds anything is refused unless the caller passes ``overwrite=True`` (``--overwrite``); even
  then only files listed in the marker are ever replaced or removed: a file bayesmages did not write
  is never deleted, and one that would be replaced stops the command before anything is moved.
* **Atomic placement.** Results are built under a temporary name beside the target
  (``.<name>.bm<pid>-<random>.tmp``) and renamed into place: a new folder appears whole; an existing
  one has each file replaced atomically, the marker claiming a file before it is moved.
* **Leftovers.** A process killed with SIGKILL cannot clean up. Temporary names carry the writer's
  process id, so the next command on the same output removes the leftovers of processes that no longer
  run (and never those of a live one).
* **One writer at a time.** A command that lands results step by step (``run``) holds an advisory
  lock (``flock`` on the folder itself, so no lock file is left behind) while it works; a second
  command on the same folder is refused with one line. The operating system drops the
  lock when the holder exits, however it exits, so a killed run never leaves the folder locked.
* **Permissions.** Temporary files and folders are created with the default modes (0666/0777), so
  the results honour the umask like any file the user creates (``mkstemp``/``mkdtemp`` would give
  0600/0700 and hide the results from collaborators).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from bayesmages.errors import InputError

__all__ = ["MARKER", "OutputDir", "check_output_file", "make_tmp_dir", "make_tmp_file", "remove_leftovers"]

#: the ownership marker of an output folder
MARKER = ".bayesmages.json"
_TMP = re.compile(r"^\.(?P<name>.+)\.bm(?P<pid>\d+)-[0-9a-z]{8}\.tmp$")


def _tmp_sibling(target: Path) -> Path:
    parent = target.parent
    return parent / f".{target.name}.bm{os.getpid()}-{secrets.token_hex(4)}.tmp"


def make_tmp_file(target: str | os.PathLike[str]) -> Path:
    """Create an empty temporary file beside ``target`` (mode 0666 less the umask) and return its path."""
    target = Path(target)
    while True:
        tmp = _tmp_sibling(target)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue


def make_tmp_dir(target: str | os.PathLike[str]) -> Path:
    """Create an empty temporary folder beside ``target`` (mode 0777 less the umask) and return its path."""
    target = Path(target)
    while True:
        tmp = _tmp_sibling(target)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:  # pragma: no cover
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:  # pragma: no cover - e.g. an out-of-range pid: not a live process of ours
        return False
    return True


def remove_leftovers(folder: str | os.PathLike[str], name: str | None = None) -> list[str]:
    """Remove the temporary files and folders that killed bayesmages processes left in ``folder``.

    Only entries named like bayesmages temporaries (``.<name>.bm<pid>-<random>.tmp``) whose process no
    longer runs are removed; with ``name``, only those of that target. Returns the removed names.
    """
    folder = Path(folder)
    removed: list[str] = []
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for p in entries:
        m = _TMP.match(p.name)
        if m is None or (name is not None and m["name"] != name) or _alive(int(m["pid"])):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        removed.append(p.name)
    return removed


def _is_tmp(name: str) -> bool:
    return _TMP.match(name) is not None


def files_under(folder: Path) -> list[str]:
    """Relative POSIX paths of every file under ``folder`` (the marker and temporaries excluded)."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _is_tmp(d)]
        rel = Path(root).relative_to(folder)
        for f in files:
            if _is_tmp(f) or (f == MARKER and rel == Path(".")):
                continue
            out.append((rel / f).as_posix())
    return sorted(out)


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def _write_marker(folder: Path, files: Iterable[str], command: str | None) -> None:
    from bayesmages import __version__

    body = {"written_by": "bayesmages", "bayesmages_version": __version__, "command": command,
            "note": "files bayesmages wrote in this folder; it replaces or removes only these",
            "files": sorted(set(files))}
    tmp = make_tmp_file(folder / MARKER)
    try:
        tmp.write_text(json.dumps(body, indent=1) + "\n")
        os.replace(tmp, folder / MARKER)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


class OutputDir:
    """An output folder written by bayesmages (see the module docstring for the rules).

    Parameters
    ----------
    path : str or path-like
        The folder (``"."`` is allowed; it is resolved to its name).
    overwrite : bool
        Allow writing into an existing folder that bayesmages did not write (its files are kept).
    command : str, optional
        The command recorded in the marker.
    legacy : callable, optional
        ``legacy(folder) -> set of relative paths`` of files to treat as bayesmages's when a folder
        has no marker (folders written before markers existed); an empty set means none.
    what : str
        How the folder is named in messages (default ``"--out"``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = OutputDir(pathlib.Path(tempfile.mkdtemp()) / "res").check()
    >>> with out.build() as tmp:
    ...     _ = (tmp / "table.csv").write_text("a,b")
    >>> sorted(p.name for p in out.path.iterdir())
    ['.bayesmages.json', 'table.csv']
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False, command: str | None = None,
                 legacy: Callable[[Path], set[str]] | None = None, what: str = "--out") -> None:
        self.given = Path(path)
        # An absolute, normalised path: "--out ." or "--out ../x" then have a real name to build beside.
        self.path = Path(os.path.abspath(path))
        self.overwrite = overwrite
        self.command = command
        self.legacy = legacy
        self.what = what
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ ownership
    def _marker(self) -> dict[str, Any] | None:
        """The folder's marker when it was written by this command (or either side names none)."""
        marker = _read_marker(self.path)
        if marker is None or (self.command and marker.get("command") not in (None, self.command)):
            return None  # e.g. a simulate folder given to cluster: its files are not this command's to replace
        return marker

    def owned(self) -> set[str]:
        """Files (relative paths) that this bayesmages command wrote in the folder."""
        marker = self._marker()
        if marker is not None:
            return {str(f) for f in marker["files"]}
        if _read_marker(self.path) is not None:
            return set()
        if self.legacy is not None and self.path.is_dir():
            return set(self.legacy(self.path))
        return set()

    def is_ours(self) -> bool:
        """True when the folder carries this command's marker (or is a recognised legacy output)."""
        if _read_marker(self.path) is not None:
            return self._marker() is not None
        return bool(self.legacy and self.path.is_dir() and self.legacy(self.path))

    def check(self) -> OutputDir:
        """Refuse an unusable target now, before any work: returns self or raises InputError."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise InputError(f"{self.what} {self.given}: exists and is not a folder")
        for parent in p.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise InputError(f"{self.what} {self.given}: {parent} is not a folder")
                break
        if p.is_dir() and not self.overwrite and not self.is_ours():
            entries = sorted(e.name for e in p.iterdir() if not _is_tmp(e.name))
            other = _read_marker(p)
            if other is not None:
                raise InputError(
                    f"{self.what} {self.given}: the folder holds the output of 'bayesmages {other.get('command')}', "
                    f"not of '{self.command}'; choose a new folder, or pass --overwrite to add to it (its files "
                    "are kept)")
            if entries:
                raise InputError(
                    f"{self.what} {self.given}: the folder exists and was not written by bayesmages (it holds "
                    f"{len(entries)} entries, e.g. {entries[0]!r}); choose a new folder, or pass --overwrite to "
                    "write into it (files bayesmages did not write are kept)")
        return self

    # ------------------------------------------------------------------ whole-folder outputs
    @contextlib.contextmanager
    def build(self) -> Iterator[Path]:
        """Yield an empty temporary folder beside the target; on success move its content into place.

        A new target appears whole (one rename); an existing one gets each new file moved in
        atomically, and the files of its earlier bayesmages output that were not rewritten removed.
        On an exception the temporary folder is deleted and the target is untouched.
        """
        self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(self.path.parent, self.path.name)
        tmp = make_tmp_dir(self.path)
        try:
            yield tmp
            files = files_under(tmp)
            _write_marker(tmp, files, self.command)
            # A new target appears whole; an existing one (even empty: it may be the working
            # directory) is never replaced as a folder, only file by file.
            if not self.path.exists():
                try:
                    os.rename(tmp, self.path)
                except OSError:
                    if not self.path.is_dir():
                        raise
            if tmp.exists():
                self.check()  # the target may have changed during the work
                self._merge(tmp, "", files, replace_all=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # ------------------------------------------------------------------ folders updated step by step
    def open(self) -> Path:
        """Make sure the folder exists and carries a marker; remove leftovers of killed runs in it.

        Used by commands that land results one part at a time (``run``). A new folder appears with
        its marker already inside (built beside it and renamed).
        """
        self.check()
        p = self.path
        p.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(p.parent, p.name)
        if not p.exists():
            tmp = make_tmp_dir(p)
            try:
                _write_marker(tmp, [], self.command)
                os.rename(tmp, p)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not p.is_dir():
                    raise
        self._lock()
        if _read_marker(p) is None:
            _write_marker(p, self.owned(), self.command)  # claim a legacy output (or nothing)
        remove_leftovers(p)
        for sub in {f.split("/")[0] for f in self.owned() if "/" in f}:
            remove_leftovers(p / sub)
        return p

    def _lock(self) -> None:
        """Take the folder's writer lock (non-blocking); refuse the folder when another process holds it."""
        if self._lock_fd is not None:
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock on this platform: one writer is the user's duty
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(f"{self.what} {self.given}: another bayesmages process is writing to this folder; "
                             "wait for it to finish or choose another folder") from None
        self._lock_fd = fd

    def release(self) -> None:
        """Release the writer lock taken by :meth:`open` (nothing to do when none is held)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def claim(self, *files: str) -> None:
        """Record files (relative paths) as bayesmages's before writing them directly into the folder."""
        collisions = [f for f in files if (self.path / f).exists() and f not in self.owned()]
        if collisions:
            raise self._collision(collisions)
        owned = self.owned()
        if not set(files) <= owned:
            _write_marker(self.path, owned | set(files), self.command)

    @contextlib.contextmanager
    def part(self, name: str, *, last: tuple[str, ...] = ()) -> Iterator[Path]:
        """Build the sub-folder ``name`` under a temporary name inside the folder; land it on success.

        A new sub-folder is renamed into place whole. An existing one is updated file by file:
        the files named in ``last`` (a completion manifest) are removed first and moved in last,
        so an interrupted update never looks finished.
        """
        tmp = make_tmp_dir(self.path / name)
        try:
            yield tmp
            files = files_under(tmp)
            self._merge(tmp, name, files, replace_all=True, last=last)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def remove(self, name: str) -> bool:
        """Remove the files bayesmages wrote under the sub-folder ``name`` (and it, once empty)."""
        owned = self.owned()
        mine = {f for f in owned if f.startswith(name + "/")}
        for f in sorted(mine):
            with contextlib.suppress(FileNotFoundError):
                (self.path / f).unlink()
        _remove_empty_dirs(self.path, {str(Path(f).parent) for f in mine})
        _write_marker(self.path, owned - mine, self.command)
        return not (self.path / name).exists()

    def prune(self) -> None:
        """Drop marker entries of files that no longer exist."""
        owned = self.owned()
        kept = {f for f in owned if (self.path / f).exists()}
        if kept != owned:
            _write_marker(self.path, kept, self.command)

    # ------------------------------------------------------------------ internals
    def _collision(self, files: list[str]) -> InputError:
        more = f" (and {len(files) - 1} more)" if len(files) > 1 else ""
        return InputError(f"{self.what} {self.given}: would replace {files[0]!r}{more}, which bayesmages did not "
                          "write; move it away or choose another folder")

    def _merge(self, src: Path, prefix: str, files: list[str], *, replace_all: bool,
               last: tuple[str, ...] = ()) -> None:
        """Move ``files`` (relative to ``src``) into ``self.path / prefix``; drop earlier own files there."""
        root = self.path
        rel = [f"{prefix}/{f}" if prefix else f for f in files]
        owned = self.owned()
        clash = [r for r in rel if r not in owned and (root / r).exists()]
        # A path component that is a foreign file (or a file where a folder must go) also clashes.
        clash += [r for r in rel for q in Path(r).parents
                  if str(q) != "." and (root / q).exists() and not (root / q).is_dir()]
        if clash:
            raise self._collision(sorted(set(clash)))
        scope = {f for f in owned if not prefix or f.startswith(prefix + "/")} if replace_all else set()
        _write_marker(root, owned | set(rel), self.command)  # claim first: a kill leaves ownership known
        for r in rel:
            if Path(r).name in last:
                with contextlib.suppress(FileNotFoundError):
                    (root / r).unlink()
        dest = root / prefix if prefix else root
        if prefix and not dest.exists():
            try:
                os.rename(src, dest)  # a new sub-folder lands whole
                moved = True
            except OSError:
                moved = False
        else:
            moved = False
        if not moved:
            for f in sorted(files, key=lambda f: Path(f).name in last):
                target = dest / f
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src / f, target)
        stale = scope - set(rel)
        for f in sorted(stale):
            with contextlib.suppress(FileNotFoundError):
                (root / f).unlink()
        _remove_empty_dirs(root, {str(Path(f).parent) for f in stale})
        _write_marker(root, (owned - stale) | set(rel), self.command)


def _remove_empty_dirs(root: Path, rels: set[str]) -> None:
    """Remove the folders ``rels`` (relative to ``root``) and their parents below ``root`` when empty."""
    for rel in sorted(rels, key=lambda r: -r.count("/")):
        q = Path(rel)
        while str(q) != ".":
            try:
                (root / q).rmdir()
            except OSError:  # not empty (a user's file, or other outputs) or gone
                break
            q = q.parent


def check_output_file(path: str | os.PathLike[str], *, overwrite: bool = False,
                      is_ours: Callable[[Path], bool] | None = None, what: str = "--out") -> Path:
    """Check an output file name before any work; remove leftovers of killed writes to it.

    Refuses a folder, a missing parent folder, and an existing file that bayesmages did not write
    (``is_ours(path)`` says whether it did) unless ``overwrite``.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p}: is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{what} {p}: the folder {parent} does not exist")
    if p.exists() and not overwrite and not (is_ours is not None and is_ours(p)):
        raise InputError(f"{what} {p}: the file exists and was not written by bayesmages; choose another name, "
                         "or pass --overwrite to replace it")
    remove_leftovers(parent, p.name)
    return p
