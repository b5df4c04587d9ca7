"""The one way stackscope reads a file: regular files only, never more than a cap.

Every file stackscope reads (the layout, walkthroughs, nginx configs and their includes,
haproxy.cfg, the `lint --lb-config` file) is named by a person or by another file, so it
may be anything: `/dev/zero` grows a `read()` without end, `/dev/urandom` likewise, a FIFO
blocks `open()` until a writer comes (forever, and a thread blocked in `open()` cannot be
cancelled, so Ctrl-C would not even quit). `read_bounded()` opens without blocking
(O_NONBLOCK), checks with fstat() on the open descriptor (no race with a rename) that it
holds a regular file, refuses a file over the cap before reading it, and reads at most
cap + 1 bytes whatever the file does meanwhile. Symlinks are followed, since configs are
commonly symlinked (sites-enabled/), but it is what they point at that must be regular.
"""

from __future__ import annotations

import errno
import os
import stat

MIB = 1024 * 1024


class FileRefused(OSError):
    """A file stackscope will not read: not a regular file, or larger than the cap.

    An OSError whose strerror is the whole sentence ("/dev/zero is not a regular file (a
    character device): stackscope reads only regular files"), so a caller that reports
    "cannot read FILE: <strerror>" reports this too; `problem` is the sentence after "is",
    for a caller that names the file itself ("FILE: not a regular file …")."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(errno.EINVAL, f"{path} is {problem}")
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path} is {self.problem}"  # the strerror __init__ set


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def size_text(limit: int) -> str:
    return f"{limit // MIB} MiB" if limit % MIB == 0 else f"{limit} bytes"


def read_bounded(path: str, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them.

    Raises FileNotFoundError, PermissionError, IsADirectoryError as open() would, and
    FileRefused for anything that is not a regular file or is larger than `limit`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not stat.S_ISREG(info.st_mode):
            via = ", through a symlink" if os.path.islink(path) else ""
            raise FileRefused(
                path, f"not a regular file ({kind_of(info.st_mode)}{via}): stackscope reads only regular files"
            )
        if info.st_size > limit:
            raise FileRefused(path, f"larger than {size_text(limit)} ({info.st_size} bytes): refused unread")
        chunks, total = [], 0
        while total <= limit:  # each read moves on or returns b"" (end): at most limit + 1 bytes
            chunk = os.read(fd, min(1 * MIB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while being read
            raise FileRefused(path, f"larger than {size_text(limit)}: refused")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str, limit: int, *, errors: str = "strict") -> str:
    """read_bounded() decoded as UTF-8 (`errors` as for bytes.decode), with line ends
    translated as open() in text mode does ("\r\n" and "\r" become "\n")."""
    text = read_bounded(path, limit).decode("utf-8", errors)
    return text.replace("\r\n", "\n").replace("\r", "\n")
