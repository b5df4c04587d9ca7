"""The LB's own validator on the config the gate judges (`haproxy -c`, `nginx -t`,
`apache2 -t`, `caddy validate`, `varnishd -C`).

stackscope's parsers read what the gate compares (pools, servers, routes) and skip the
rest, so a config with `server a1 … chek` passed the gate while `haproxy -c` refused it:
only the LB knows every keyword of its own version. So the gate runs the LB's validator
when it is installed, and says so when it is not.

Validators only parse: each runs in a fresh temporary directory that holds everything it
may write (nginx's prefix and pid, httpd's runtime dir and pid, Caddy's HOME, varnishd's
work dir), with a timeout (its process group is killed after it), its output written to a
file in that directory and read back bounded, and a file-size limit so it cannot fill the
disk. Nothing starts or signals a running service, and nothing listens. The files the
config names (logs, certificates) are the validator's to open: one it cannot open here is
reported as a note (the gate may run on a CI host without them), not as a config error.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from stackscope.files import read_text
from stackscope.lb import nginx_conf, varnish_vcl
from stackscope.model import Status
from stackscope.safetext import terminal_safe

TIMEOUT_S = 10.0
MAX_OUTPUT = 64 * 1024  # bytes of the validator's output read back
MAX_FINDINGS = 20
_FILE_LIMIT = 16 * 1024 * 1024  # RLIMIT_FSIZE of the validator: it only parses

ERROR, WARNING, ENVIRONMENT = "error", "warning", "environment"
# Words of a validator that could not open a file the config names: about this host, not the config.
_ENVIRONMENT = re.compile(
    r"No such file or directory|Permission denied|could not open|cannot open|can't open|unable to load", re.I
)


@dataclass(frozen=True)
class Finding:
    severity: str  # ERROR, WARNING or ENVIRONMENT
    where: str  # "file:line" as the validator named it, or ""
    words: str  # the validator's own words, terminal-safe

    def line(self) -> str:
        return f"{self.where}: {self.words}" if self.where else self.words


@dataclass(frozen=True)
class Validation:
    tool: str  # the command as a reader would type it ("haproxy -c")
    ran: bool  # False: not installed, or it could not be run (see note)
    findings: tuple[Finding, ...] = ()
    note: str = ""  # why it did not run, or that it timed out

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)


@dataclass(frozen=True)
class _Tool:
    label: str
    binaries: tuple[str, ...]  # the first one found on PATH (or in /usr/sbin) runs
    argv: Callable[[str, str, str], list[str]]  # (binary, config path, temp dir) -> argv
    parse: Callable[[str, bool], list[Finding]]  # (output, failed) -> findings


def _where(file: str, line: str) -> str:
    return f"{os.path.basename(file)}:{line}"


def _haproxy(output: str, failed: bool) -> list[Finding]:
    out = []
    for raw in output.splitlines():
        level = ERROR if "[ALERT]" in raw else WARNING if "[WARNING]" in raw else None
        if level is None or re.search(r"Error\(s\) found in configuration file|Fatal errors found", raw):
            continue
        words = re.sub(r"^\[\w+\]\s*\(\d+\)\s*:\s*(config\s*:\s*)?", "", raw.strip())
        where = ""
        if found := re.search(r"(?:parsing )?\[([^\]\s]+):(\d+)\]\s*:?\s*", words):
            where = _where(found.group(1), found.group(2))
            words = (words[: found.start()] + words[found.end() :]).strip()
        out.append(Finding(level, where, words))
    return out


def _nginx(output: str, failed: bool) -> list[Finding]:
    out = []
    for raw in output.splitlines():
        found = re.search(r"\[(emerg|alert|crit|error|warn)\]\s*\d+#\d+:\s*(.*)$", raw)
        if not found:
            continue
        words, where = found.group(2), ""
        if place := re.search(r"\s+in\s+(\S+):(\d+)$", words):
            where, words = _where(place.group(1), place.group(2)), words[: place.start()]
        out.append(Finding(WARNING if found.group(1) == "warn" else ERROR, where, words))
    return out


def _apache(output: str, failed: bool) -> list[Finding]:
    out = []
    lines = output.splitlines()
    for index, raw in enumerate(lines):
        if found := re.search(r"Syntax error on line (\d+) of (.+?):\s*$", raw):
            words = lines[index + 1].strip() if index + 1 < len(lines) else "syntax error"
            out.append(Finding(ERROR, _where(found.group(2), found.group(1)), words))
        elif re.search(r"\bAH\d{5}:", raw) and not re.search(r"\bAH00(526|014):", raw):
            out.append(Finding(ERROR if failed else WARNING, "", raw.strip()))
    return out


def _caddy(output: str, failed: bool) -> list[Finding]:
    out = []
    for raw in output.splitlines():
        if raw.startswith("{"):
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("warn", "error"):
                level = ERROR if entry.get("level") == "error" else WARNING
                out.append(Finding(level, "", str(entry.get("msg", ""))))
        elif raw.startswith("Error:"):
            words, where = raw[len("Error:") :].strip(), ""
            if place := re.search(r"(\S+):(\d+) - (?:Error during parsing: )?", words):
                where = _where(place.group(1), place.group(2))
                words = (words[: place.start()] + words[place.end() :]).strip()
            out.append(Finding(ERROR, where, words))
    return out


def _varnish(output: str, failed: bool) -> list[Finding]:
    out = []
    lines = output.splitlines()
    for index, raw in enumerate(lines):
        if raw.strip() != "Message from VCC-compiler:" or index + 1 >= len(lines):
            continue
        words, where = lines[index + 1].strip(), ""
        for after in lines[index + 1 : index + 8]:
            if place := re.search(r"\('([^']+)' Line (\d+) Pos \d+\)", after):
                where = _where(place.group(1), place.group(2))
                break
        out.append(Finding(ERROR, where, words))
    return out


def _nginx_argv(binary: str, path: str, tmp: str) -> list[str]:
    head = read_text(path, 4 * 1024 * 1024, errors="replace")
    if not re.search(r"^\s*(events|http|stream)\s*\{", head, re.M):
        # a conf.d fragment (upstreams, servers): nginx reads it inside http {}, so it is tested there
        main = os.path.join(tmp, "nginx.conf")
        with open(main, "w", encoding="utf-8") as out:
            out.write(f"events {{}}\nhttp {{\n    include {_nginx_quoted(path)};\n}}\n")
        path, head = main, ""
    # the pid file goes to tmp unless the config names its own (a second `pid` is an
    # error); `nginx -t` opens that one without truncating or writing it
    pid = [] if re.search(r"^\s*pid\s", head, re.M) else ["-g", f"pid {tmp}/nginx.pid;"]
    return [binary, "-t", "-q", "-c", path, "-p", tmp + "/", "-e", "stderr", *pid]


def _nginx_quoted(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _apache_argv(binary: str, path: str, tmp: str) -> list[str]:
    # the main file's directory is the ServerRoot unless the config sets one (as apache_conf reads it)
    return [
        binary,
        "-t",
        "-d",
        os.path.dirname(path),
        "-f",
        path,
        "-C",
        f"DefaultRuntimeDir {tmp}",
        "-C",
        f"ErrorLog {tmp}/error.log",
    ]


def _caddy_argv(binary: str, path: str, tmp: str) -> list[str]:
    head = read_text(path, 256 * 1024, errors="replace")
    json_config = head.lstrip().startswith("{") and re.search(r'"(apps|handler|admin)"\s*:', head)
    return [binary, "validate", "--config", path, *([] if json_config else ["--adapter", "caddyfile"])]


def _varnish_argv(binary: str, path: str, tmp: str) -> list[str]:
    jail = ["-j", "none"] if os.geteuid() == 0 else []  # as root the default jail drops to vcache
    return [binary, "-C", *jail, "-n", os.path.join(tmp, "varnish"), "-f", path]


TOOLS: dict[str, _Tool] = {
    "haproxy": _Tool("haproxy -c", ("haproxy",), lambda b, p, t: [b, "-c", "-f", p], _haproxy),
    "nginx": _Tool("nginx -t", ("nginx",), _nginx_argv, _nginx),
    "apache": _Tool("apache2 -t", ("apache2", "httpd"), _apache_argv, _apache),
    "caddy": _Tool("caddy validate", ("caddy",), _caddy_argv, _caddy),
    "varnish": _Tool("varnishd -C", ("varnishd",), _varnish_argv, _varnish),
}


def find_binary(names: tuple[str, ...]) -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return next((found for name in names if (found := shutil.which(name, path=search))), None)


def _environment(tmp: str) -> dict[str, str]:
    """The caller's environment, with HOME and the XDG dirs in `tmp` (Caddy keeps its
    storage there), and the variables Debian's apache2.conf expects (its envvars file
    sets them for apache2ctl) pointing into `tmp` unless they are set."""
    env = dict(os.environ, HOME=tmp, XDG_DATA_HOME=tmp, XDG_CONFIG_HOME=tmp, XDG_CACHE_HOME=tmp, LC_ALL="C")
    for name, value in (
        ("APACHE_RUN_DIR", tmp),
        ("APACHE_LOCK_DIR", tmp),
        ("APACHE_LOG_DIR", tmp),
        ("APACHE_PID_FILE", os.path.join(tmp, "apache2.pid")),
        ("APACHE_RUN_USER", "nobody"),
        ("APACHE_RUN_GROUP", "nogroup"),
    ):
        env.setdefault(name, value)
    return env


def _limits() -> None:  # in the child, before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (_FILE_LIMIT, _FILE_LIMIT))


def validate(kind: str, path: str, *, timeout: float = TIMEOUT_S) -> Validation:
    """The LB's validator's verdict on `path` (a `kind` from gate.detect)."""
    tool = TOOLS[kind]
    try:
        head = read_text(path, 4 * 1024 * 1024, errors="replace")
    except OSError as exc:
        return Validation(tool.label, False, note=f"cannot read {path}: {exc.strerror or exc}")
    if (kind == "nginx" and nginx_conf.split_dump(head) is not None) or (
        kind == "varnish" and varnish_vcl.split_show(head) is not None
    ):
        return Validation(tool.label, False, note="a saved dump of a running LB: its own check ran when it loaded")
    binary = find_binary(tool.binaries)
    if binary is None:
        return Validation(tool.label, False, note=f"{tool.binaries[0]} is not installed here")
    path = os.path.abspath(path)
    with tempfile.TemporaryDirectory(prefix="stackscope-validate-") as tmp:
        log = os.path.join(tmp, "output")
        try:
            argv = tool.argv(binary, path, tmp)
            with open(log, "wb") as sink:
                process = subprocess.Popen(  # noqa: S603 (a fixed argv; the path is an argument)
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    cwd=tmp,
                    env=_environment(tmp),
                    start_new_session=True,
                    preexec_fn=_limits,  # noqa: PLW1509 (no threads in the CLI's gate)
                )
        except OSError as exc:
            return Validation(tool.label, False, note=f"cannot run {binary}: {exc.strerror or exc}")
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill(process)
            return Validation(tool.label, False, note=f"{tool.label} did not finish within {timeout:g} s")
        finally:
            _kill(process)  # its children, if any outlived it
        with open(log, "rb") as sink:
            output = sink.read(MAX_OUTPUT).decode("utf-8", "replace")
    findings = tool.parse(output, code != 0)
    if code != 0 and not any(f.severity == ERROR for f in findings):
        first = [line.strip() for line in output.splitlines() if line.strip()][:3]
        findings.append(Finding(ERROR, "", "; ".join(first) or f"exit status {code}"))
    findings = [
        Finding(ENVIRONMENT if f.severity == ERROR and _ENVIRONMENT.search(f.words) else f.severity, f.where, f.words)
        for f in findings
    ]
    safe = tuple(Finding(f.severity, terminal_safe(f.where), terminal_safe(f.words)) for f in findings)
    return Validation(tool.label, True, safe[:MAX_FINDINGS])


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def status_of(validation: Validation) -> Status:
    """CRIT when the LB refuses the config (deploying it fails), else OK: a validator
    that did not run, or could not open a file here, leaves the gate to its own checks."""
    return Status.CRIT if validation.errors else Status.OK


def report_lines(validation: Validation, redact: Callable[[str], str] = str) -> list[str]:
    """What the validator said, one line per finding, for the gate's report."""
    if not validation.ran:
        return [f"{validation.tool}: not run ({validation.note}); stackscope's own checks only"]
    if not validation.findings:
        return [f"{validation.tool}: configuration valid"]
    head = f"{validation.tool}: the LB refuses this config" if validation.errors else f"{validation.tool}: valid"
    marks = {ERROR: "✖", WARNING: "▲", ENVIRONMENT: "?"}
    lines = [head]
    for finding in validation.findings:
        note = " (cannot be opened here: not checked)" if finding.severity == ENVIRONMENT else ""
        lines.append(f"  {marks[finding.severity]} {redact(finding.line())}{note}")
    return lines
