"""How `lamforge run` writes into a user's folder: whole or not at all, never over a file it may not replace, never
through a name another user swapped for a symlink, and never readable by more people than the user's own document.

Every write here goes the same way (`install`): the bytes are copied into a new temporary file beside the target,
created exclusively and only readable by this user while it is written; its mode, owner, group and extended
attributes (ACLs among them) are set through the open descriptor, so a name swapped for a symlink meanwhile is never
followed; it is fsynced, then renamed over the target (a replacement the user allowed) or hard-linked to a new name
(which fails, rather than replaces, when a file appeared there meanwhile). The office itself never writes into the
user's folders: it saves the result and the screenshots into the run's private staging folder, and `install` copies
from there. The one gap left: on a file system without hard links (FAT, some shares) a new name is checked just
before the rename, so a file created in between is replaced.

Why by hand: no library writes a file atomically with these guarantees (atomicwrites is unmaintained and follows
the target's name for permissions); the pieces are os calls.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path

# The temporaries' names; a run killed with SIGKILL (or a power cut) mid-write leaves one behind.
TEMPORARY_NAME = re.compile(r"\.lamforge-([0-9]{1,10})-[0-9a-f]{8}(?:\.[A-Za-z0-9]{1,10})?")
# A save is killed by the office's watchdog within a minute; a temporary this old is from no save still running
# (its process id alone cannot tell: on a shared network folder it may be another machine's).
STALE_AFTER_S = 600
# File systems that refuse hard links (FAT, some network shares) answer os.link with one of these.
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def temporary_beside(path: Path) -> Path:
    # Short, whatever path's name: a name built on it would pass the file system's limit before path's does.
    return path.with_name(f".lamforge-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


def numbered(path: Path, n: int) -> Path:
    """report.pdf, report-2.pdf, report-3.pdf, ... for n = 1, 2, 3, ..."""
    return path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")


def backup_path(doc: Path) -> Path:
    """mine.docx -> mine.backup.docx, or mine.backup-2.docx when that exists (a dangling symlink too)."""
    candidate, n = doc.with_name(f"{doc.stem}.backup{doc.suffix}"), 1
    while os.path.lexists(candidate):
        n += 1
        candidate = doc.with_name(f"{doc.stem}.backup-{n}{doc.suffix}")
    return candidate


def new_file_mode(like: Path | None) -> int:
    """The mode of a new file: what the umask gives, and no more than `like` (the user's document it was made from)
    allows: a private 0600 draft's result stays private, and a document from a 0777 mount gives no world-writable
    result."""
    mask = os.umask(0o022)
    os.umask(mask)
    mode = 0o666 & ~mask
    return mode & stat.S_IMODE(like.stat().st_mode) if like is not None else mode


def sync_folder(folder: Path) -> None:
    # A rename is atomic for the name, not for the data: without fsync a power cut can leave the new name on an
    # empty file (ext4 with delalloc, among others). The folder too, so the rename itself is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _take_owner(fd: int, like: Path) -> None:
    """`like`'s owner and group where this process may set them (the group alone where the owner may not change),
    and its extended attributes (POSIX ACLs live there)."""
    st = os.stat(like, follow_symlinks=False)
    for uid in (st.st_uid, -1):
        try:
            os.fchown(fd, uid, st.st_gid)
            break
        except OSError:  # not permitted, or an owner a user namespace does not map (EINVAL)
            continue
    if hasattr(os, "listxattr"):
        try:
            names = os.listxattr(like, follow_symlinks=False)
        except OSError:
            names = []
        for name in names:
            try:
                os.setxattr(fd, name, os.getxattr(like, name, follow_symlinks=False))
            except OSError:
                pass


# The largest file copied into a user's folder. The office can make a sparse file of any size at no cost to itself;
# copied, it would fill the user's disk. Writer's documents, even with pictures, stay far below.
MAX_COPY_BYTES = 1 << 30


def open_plain_file(source: Path):
    """`source` opened for reading, only if it is a plain file under that very name and of at most MAX_COPY_BYTES:
    never through a symlink, never a FIFO (whose open would wait for a writer for ever), a device (/dev/zero would
    fill the disk) or a folder. The office can write such things into its folders, the staging folder among them
    (env/sandbox.py)."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symlink, not a file: not copied", str(source)) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_COPY_BYTES:
        os.close(fd)
        why = "not a plain file" if not stat.S_ISREG(st.st_mode) else f"larger than {MAX_COPY_BYTES >> 30} GiB"
        raise OSError(errno.EINVAL, f"{why}: not copied", str(source))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _copy_to_new_file(source: Path, target: Path, mode: int, like: Path | None) -> None:
    with open_plain_file(source) as src:  # first: nothing is made beside the target for a source refused
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(os.dup(fd), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if like is not None:
                _take_owner(fd, like)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)


def install(source: Path, target: Path, *, replace: bool, mode: int, like: Path | None = None,
            on_renamed=None) -> None:
    """Copy source to target through a temporary beside it (see the module docstring). replace: rename over target;
    else target must not exist, and FileExistsError says it did. like: the file whose owner, group and extended
    attributes the copy takes (the replaced file, or the document a backup is of). on_renamed runs right after the
    rename, so a stop signal during the folder's fsync cannot report the old file as still there."""
    temporary = temporary_beside(target)
    try:
        _copy_to_new_file(source, temporary, mode, like)
        if replace:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in NO_HARD_LINKS:
                    raise
                if os.path.lexists(target):  # no hard links here: the same check, just before the rename
                    raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
                os.replace(temporary, target)
        if on_renamed is not None:
            on_renamed()
        sync_folder(target.parent)
    finally:
        temporary.unlink(missing_ok=True)


def keep_backup(path: Path) -> Path:
    """Copy path to a free NAME.backup.EXT beside it, with its mode, owner and times: a copy cut short (a full disk,
    a kill) never stands as a backup."""
    for _ in range(100):
        backup = backup_path(path)
        try:
            install(path, backup, replace=False, mode=stat.S_IMODE(path.stat().st_mode), like=path)
            break
        except FileExistsError:
            continue  # taken since backup_path looked: the next free name
    else:
        raise FileExistsError(errno.EEXIST, "no free backup name beside it", str(path))
    # The times after the rename: a temporary that bore the document's old mtime would look like a killed run's to
    # remove_stale_temporaries (on a network folder, where process ids tell nothing).
    st = path.stat()
    os.utime(backup, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return backup


def stage_result(env, private: Path, suffix: str) -> Path:
    """Have the office save its document into the private folder (seconds): done before the output is looked at
    again, so what the user may change meanwhile is seen by the checks, the backup and the rename that follow."""
    staged = private / f".result{suffix}"
    staged.unlink(missing_ok=True)
    env.save_as(staged)
    return staged


# What Writer saves and exports: the only kinds of file published into a user's folder. Another name (conftest.py,
# Makefile, a .desktop file) could be run there by another program; the office can save any name in its folder.
DOCUMENT_SUFFIXES = frozenset({".odt", ".ott", ".fodt", ".docx", ".dotx", ".doc", ".dot", ".rtf", ".txt", ".pdf",
                               ".epub", ".html", ".htm", ".xhtml", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})


def publishable(path: Path) -> bool:
    """Whether a file the agent saved may be copied into the user's folder: a plain file under a plain name (no
    dotfile such as .bash_profile or an office lock file, no control characters) of a document type."""
    name = path.name
    return (path.is_file() and not path.is_symlink() and not name.startswith(".")
            and all(ch.isprintable() for ch in name) and path.suffix.lower() in DOCUMENT_SUFFIXES)


# At most this many of the agent's files, and this many bytes in all, go into a user's folder; a name is tried with
# at most this many numbers. The office can save as many files as it likes, and a request needs a few.
MAX_PUBLISHED_FILES = 20
MAX_NUMBERED_NAMES = 100


def publish_staged(staging: Path, folder: Path, mode: int, skip: set[str] = frozenset(),
                   on_error=None) -> list[tuple[Path, Path]]:
    """Copy each file the agent saved in `staging` into `folder` under its own name, or NAME-2.EXT, NAME-3.EXT, ...
    when that exists; never over a file. Names in `skip` stay out (the command's own result). A file that cannot be
    copied (a full disk, a name too long there, no free name, past MAX_PUBLISHED_FILES or MAX_COPY_BYTES in all) is
    passed to on_error and the others still go. Returns (staged, published) pairs."""
    published, total = [], 0
    for staged in sorted(p for p in staging.iterdir() if publishable(p) and p.name not in skip):
        try:
            size = staged.lstat().st_size
            if len(published) >= MAX_PUBLISHED_FILES or total + size > MAX_COPY_BYTES:
                raise OSError(errno.EFBIG, f"more than {MAX_PUBLISHED_FILES} files or {MAX_COPY_BYTES >> 30} GiB "
                                           f"saved in all: not copied", str(staged))
            # A free name first, then one copy: install copies before it links, so each taken name tried would
            # cost a whole copy (a name that is taken in the meantime still does).
            for n in range(1, MAX_NUMBERED_NAMES + 1):
                target = numbered(folder / staged.name, n)
                if os.path.lexists(target):
                    continue
                try:
                    install(staged, target, replace=False, mode=mode)
                except FileExistsError:
                    continue
                published.append((staged, target))
                total += size
                break
            else:
                raise OSError(errno.EEXIST, f"no free name up to -{MAX_NUMBERED_NAMES}: not copied", str(staged))
        except OSError as exc:
            if on_error is None:
                raise
            on_error(staged, exc)
    return published


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process; no id this system has: keep it
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries of writes that were cut short by a killed `lamforge run` in folder: those whose
    process is gone and that are older than STALE_AFTER_S. They never held a finished result (the rename is the
    last step), so nothing of the user's is lost. Returns what was removed."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = TEMPORARY_NAME.fullmatch(path.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        try:
            if path.is_file() and not path.is_symlink() and time.time() - path.stat().st_mtime > STALE_AFTER_S:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed
