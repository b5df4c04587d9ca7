"""Load balancer knowledge: pools, how HAProxy and nginx describe them, and drift.

Everything here is parsing and judging (no sockets): the probes in stackscope/probes/
fetch the bytes, `lint --lb-config` reads files, and both hand the result to this package.
"""

from stackscope.files import FileRefused, read_text
from stackscope.safetext import terminal_safe


class ConfigError(Exception):
    """A config that cannot be read or parsed: the file, the line (0: the file itself)
    and what the LB would say about it. Words quoted from the file may hold anything
    (an escape sequence in a directive), so the file name and message are made safe for
    a terminal here, where every config error is made, before any output sees them."""

    def __init__(self, file: str, line: int, message: str) -> None:
        file, message = terminal_safe(file), terminal_safe(message)
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file, self.line, self.message = file, line, message


def read_config(path: str, limit: int, what: str = "config") -> str:
    """A config file's text through the bounded reader (regular files only, the size
    refused before reading); every way it cannot be read is a ConfigError on the file,
    so each LB's parser reports an unreadable include like any other problem. `what`
    names the file in the messages ("the nginx config", "VCL")."""
    try:
        return read_text(path, limit, errors="replace")
    except FileRefused as exc:
        raise ConfigError(path, 0, exc.problem) from None
    except FileNotFoundError:
        raise ConfigError(path, 0, "no such file") from None
    except PermissionError:
        raise ConfigError(path, 0, f"permission denied (stackscope needs read access to {what})") from None
    except IsADirectoryError:
        raise ConfigError(path, 0, f"is a directory, not {what}") from None
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot read: {exc.strerror or exc}") from None


class ConfigSources:
    """Where an LB's config text comes from: files on disk, read through read_config, or
    the sections of a dump the LB printed of itself (`nginx -T`, `vcl.show -v`). Reads
    are counted, so an include loop or a wide glob cannot read without end."""

    dump_name = "the dump"  # what the sections came from, for "not in …"
    what = "the config"  # for read_config's messages
    max_files = 500
    max_bytes = 4 * 1024 * 1024

    def __init__(self, dump: dict[str, str] | None = None) -> None:
        self.dump = dump
        self.read_count = 0

    def read(self, path: str) -> str:
        self.read_count += 1
        if self.read_count > self.max_files:
            raise ConfigError(path, 0, f"more than {self.max_files} included files")
        if self.dump is not None:
            if path not in self.dump:
                raise ConfigError(path, 0, f"not in {self.dump_name}")
            return self.dump[path]
        return read_config(path, self.max_bytes, self.what)
