"""Load balancer knowledge: pools, how HAProxy and nginx describe them, and drift.

Everything here is parsing and judging (no sockets): the probes in stackscope/probes/
fetch the bytes, `lint --lb-config` reads files, and both hand the result to this package.
"""


class ConfigError(Exception):
    """A config that cannot be read or parsed: the file, the line (0: the file itself)
    and what the LB would say about it."""

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")
        self.file, self.line, self.message = file, line, message
