"""Load balancer knowledge: pools, how HAProxy and nginx describe them, and drift.

Everything here is parsing and judging (no sockets): the probes in stackscope/probes/
fetch the bytes, `lint --lb-config` reads files, and both hand the result to this package.
"""

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
