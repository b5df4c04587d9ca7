"""The data that flows one way from the layout file to the renderers: the layout
(`Layout`, `Layer`, `Check` and the parsed targets), statuses, results with their typed
evidence, and snapshots.

Everything here is plain data with no I/O, and it imports nothing else of the project, so
the diagnosis and every renderer can be tested with hand-built values. layout.py builds
the layout from YAML; the probes build the results.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------- terminal-safe text
# The one rule for text that may reach a terminal (re-exported by safetext.py). It lives
# here because Result applies it to everything it carries, and the model imports nothing
# else of the project.

SHOWN_INSTEAD = "·"  # the same mark printable() uses for a byte that cannot be shown

# C0 controls (tab and newline included: a row or a detail is one line), DEL, C1 controls
# (0x9b is a one-byte CSI on some terminals; 0x85 is NEL), the Unicode line and paragraph
# separators (U+2028, U+2029: YAML 1.1, and so Prometheus's and Alertmanager's YAML, reads
# them, like NEL, as line breaks, so a name holding one could start a line of a generated
# config) and the bidi overrides that reorder text.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: object) -> str:
    """`text` with every control character replaced, for text and Nagios output."""
    return _TERMINAL_UNSAFE.sub(SHOWN_INSTEAD, str(text))


def is_terminal_safe(text: str) -> bool:
    """True when `text` holds no character terminal_safe() would replace."""
    return _TERMINAL_UNSAFE.search(text) is None


def safe_value(value: Any) -> Any:
    """`value` with every string in it (mapping keys too, at any depth) terminal-safe.

    Numbers, booleans and None pass unchanged; lists and tuples keep their type. A string
    that is already safe is returned as is, so sanitising twice costs a regex scan only.
    Every probe result passes through here (an http check's facts hold some 35 values):
    exact-type tests come first, and a mapping's plain strings and numbers are handled in
    its own loop rather than by a call each."""
    kind = type(value)
    if kind is str:
        return value if _unsafe_at(value) is None else terminal_safe(value)
    if value is None or kind is int or kind is float or kind is bool:
        return value
    if kind is dict or isinstance(value, Mapping):
        return _safe_mapping(value)
    if kind is list or kind is tuple:
        return kind(safe_value(v) for v in value)
    if isinstance(value, str):  # a str subclass (an enum's value, say)
        return value if is_terminal_safe(value) else terminal_safe(value)
    if isinstance(value, (list, tuple)):
        return type(value)(safe_value(v) for v in value)
    if isinstance(value, bytes):  # never meant for output, but a probe might put some in a fact
        return terminal_safe(value.decode("latin-1"))
    return value


_unsafe_at = _TERMINAL_UNSAFE.search


def _safe_mapping(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    safe: dict[Any, Any] = {}
    for key, item in mapping.items():
        if type(key) is not str or _unsafe_at(key) is not None:
            key = safe_value(key)
        kind = type(item)
        if kind is str:
            if _unsafe_at(item) is not None:
                item = terminal_safe(item)
        elif not (item is None or kind is int or kind is float or kind is bool):
            item = safe_value(item)
        safe[key] = item
    return safe


class Status(enum.Enum):
    """A check, layer or overall state, with the monitoring-plugins exit code as value."""

    OK = 0
    WARN = 1
    CRIT = 2
    UNKNOWN = 3

    @property
    def rank(self) -> int:
        """Severity order for "worst of": ok < unknown < warn < crit.

        Unknown sits above ok (a check that cannot tell must never read as healthy) but
        below warn and crit (a real failure elsewhere is the more useful thing to show),
        the same order monitoring-plugins uses in max_state_alt.
        """
        return _RANK[self]

    @property
    def word(self) -> str:
        return self.name

    @property
    def glyph(self) -> str:
        """A glyph per status so that status never depends on colour alone."""
        return _GLYPH[self]

    @property
    def exit_code(self) -> int:
        return self.value

    @classmethod
    def worst(cls, statuses: Iterable[Status], default: Status | None = None) -> Status:
        items = list(statuses)
        if not items:
            return default if default is not None else cls.OK
        return max(items, key=lambda s: s.rank)

    @property
    def failing(self) -> bool:
        return self in (Status.WARN, Status.CRIT)

    @property
    def label(self) -> str:
        """Glyph and word, as every output shows a status: "✖ CRIT"."""
        return f"{self.glyph} {self.word}"

    def __str__(self) -> str:
        return self.name.lower()


_RANK = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARN: 2, Status.CRIT: 3}
_GLYPH = {Status.OK: "✔", Status.WARN: "▲", Status.CRIT: "✖", Status.UNKNOWN: "?"}


class ErrorKind(str, enum.Enum):
    """Why a check failed, in terms the diagnosis can reason about.

    The diagnosis uses the kind to decide whether a failure can be explained by a layer
    further down the path (a 503 can; a refused connection to the LB itself cannot).
    """

    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    RESOLVE = "resolve"  # the check could not resolve the host it addresses
    DNS_RCODE = "dns_rcode"  # a DNS server answered NXDOMAIN / SERVFAIL / REFUSED
    DNS_ANSWER = "dns_answer"  # a DNS answer that is empty or not what was expected
    TLS = "tls"
    CERT = "cert"  # certificate expired, mismatched or untrusted
    PROTOCOL = "protocol"  # the peer spoke garbage or another protocol
    HTTP_STATUS = "http_status"
    CONTENT = "content"  # body or header did not match the expectation
    SLOW = "slow"  # answered, but above warn_ms
    STATE = "state"  # the server reported a bad state of its own (recovery, LOADING)
    SATURATED = "saturated"  # too many connections / clients
    AUTH = "auth"  # credentials refused
    POOL = "pool"  # an LB pool that drifted from the declared backends (the LB's own fault)
    MEMBERS_DOWN = "members_down"  # the LB marks pool members down (may be the members' fault)
    CONFIG = "config"  # a config file that cannot be read or parsed
    RESOURCE = "resource"  # host resources (cpu, memory, disk, fds) above threshold
    SUSPECTED = "suspected"  # still no answer, far longer than this check usually takes (not a timeout yet)
    INTERNAL = "internal"  # the probe itself raised: a bug in stackscope, shown as unknown

    def __str__(self) -> str:
        return self.value


# What an http check records as the identity of a response that carried no identity
# header: such a response came from no backend (an LB's own error page, for instance).
NO_IDENTITY = "(no identity header)"

# Whether an LB pool member takes new requests and, if not, why: PoolMember.service (and
# the `service` word of the pool facts). Every LB source (lb/pool.py and the checks that
# build pools) words its own states; these words are what the diagnosis reads.
IN = "in"  # in rotation: new requests go to it
BACKUP = "backup"  # a standby: takes traffic only when the primaries fail
DOWN_BY_CHECK = "down-by-check"  # failing the LB's health checks
MAINT = "maint"  # put in maintenance (HAProxy MAINT, or `disabled` in haproxy.cfg, which starts it there)
DRAIN = "drain"  # draining: existing sessions only
NOLB = "nolb"  # up, but taken out of load balancing (HAProxy NOLB)
DISABLED = "disabled"  # marked `down` in the config (nginx)
WEIGHT_0 = "weight-0"  # weight 0 in the config: the balancing algorithm never picks it
UNKNOWN = "unknown"  # a state the source reports that we cannot read

# --------------------------------------------------------------------------- typed evidence
#
# What a probe found that the diagnosis reasons about, as small frozen values carried in
# Result.evidence. `facts` stay free-form for display and JSON; the diagnosis reads only
# these (never a fact key, never a probe's option object).


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP response as the diagnosis needs it."""

    status_code: int
    identity: str | None = None  # the identity header of the last response, if asked for and sent
    identity_header: str | None = None  # the header the check asks for (None: not asked)
    identities: tuple[tuple[str, int], ...] = ()  # (identity or NO_IDENTITY, responses) over the samples
    store_errors: tuple[str, ...] = ()  # store kinds ("redis", "postgres", "mysql") whose error the body quotes


@dataclass(frozen=True)
class GrpcAnswer:
    """A gRPC health answer as the diagnosis needs it: through an LB, NOT_SERVING or
    UNAVAILABLE may be a backend's own state passed on (like a 5xx), where a refused or
    misrouted call is the LB's."""

    grpc_status: str = ""  # the grpc-status name ("OK", "UNAVAILABLE"); "" when the answer carried none
    serving_status: str = ""  # SERVING, NOT_SERVING, SERVICE_UNKNOWN, UNKNOWN; "" when no health answer came
    http_status: int = 0  # the HTTP status of the response (an LB's own 502 page carries no grpc-status)


@dataclass(frozen=True)
class PoolMember:
    """One member of an LB pool, as the LB reports it."""

    name: str
    address: str | None
    service: str  # IN, BACKUP, DOWN_BY_CHECK, MAINT, ... (see above)
    declared: bool  # the address is one of the declared backends
    declared_as: str = ""  # the layout's check name for it
    state: str = ""  # the LB's own word: UP, DOWN, "UP 1/2", MAINT
    check: str = ""  # the LB's last health check, e.g. "L4CON Connection refused"
    check_failing: bool = False  # the LB's last health check of it failed (even if still UP)
    errors_rising: bool = False  # its error/retry/redispatch counters rose since the last round
    # The longest the LB may take to send it traffic again once it answers again (its own
    # re-admission clock: HAProxy's downinter/fastinter x rise, Varnish's probe window,
    # Apache's retry or hcheck interval, Caddy's fail_duration or health_interval, nginx's
    # fail_timeout), in seconds; None when the LB's settings are not known. Inside that
    # window an LB still holding out a member that answers directly is the member
    # recovering, not the LB at fault.
    readmit_s: float | None = None

    @property
    def failing(self) -> bool:
        """The LB's own stats show this member failing."""
        return self.service == DOWN_BY_CHECK or self.check_failing or self.errors_rising


@dataclass(frozen=True)
class PoolEvidence:
    """An LB pool: every member, declared or not."""

    backend: str
    members: tuple[PoolMember, ...] = ()

    @property
    def declared(self) -> tuple[PoolMember, ...]:
        return tuple(m for m in self.members if m.declared)


@dataclass(frozen=True)
class DnsAnswers:
    """What a DNS check got, and what it expected (empty: no expectation)."""

    answers: tuple[str, ...]
    expected: tuple[str, ...] = ()
    matched: bool = True  # every expected value is among the answers


@dataclass(frozen=True)
class StoreState:
    """A data store's own account of itself, read-only (INFO, pg_is_in_recovery, @@read_only)."""

    kind: str  # redis | postgres | mysql
    role: str | None = None  # primary | standby, when the store says
    expected_role: str | None = None  # what the layout declares
    read_only: bool | None = None
    refuses_writes: str = ""  # why clients' writes fail right now ("" = they do not, as far as known)
    used_memory: int | None = None
    maxmemory: int | None = None
    maxmemory_policy: str | None = None


@dataclass(frozen=True)
class SeriesEvidence:
    """A check judged per series (a `prometheus` check with `per:`): which rows fail.

    With `vantage` the rows are places the target was probed from, and a disagreement
    between them points at the path from those places rather than at the layer."""

    keys: tuple[str, ...]  # every row's key (the `per` label's value), in order
    failing: tuple[str, ...]  # the keys of the rows that warn or fail
    vantage: bool = False
    why: str = ""  # why the first failing row fails ("value 0, expected 1")


# Error texts a store sends its clients, which a backend often passes on in its error page:
# a 500 that quotes one ties the backend's failure to that store. (kind, pattern)
STORE_ERROR_SIGNS: tuple[tuple[str, str], ...] = (
    ("redis", r"OOM command not allowed"),
    ("redis", r"MISCONF Redis is configured to save RDB snapshots"),
    ("redis", r"READONLY You can't write against a read only replica"),
    ("redis", r"LOADING Redis is loading the dataset"),
    ("postgres", r"cannot execute \w+ in a read-only transaction"),
    ("postgres", r"the database system is (?:in recovery mode|starting up|shutting down)"),
    ("postgres", r"sorry, too many clients already"),
    ("mysql", r"is running with the --(?:super-)?read-only option"),
    ("mysql", r"Too many connections"),
)


def store_errors_in(text: str) -> tuple[str, ...]:
    """The store kinds whose error messages `text` quotes, in STORE_ERROR_SIGNS order."""
    import re

    found: list[str] = []
    for kind, pattern in STORE_ERROR_SIGNS:
        if kind not in found and re.search(pattern, text):
            found.append(kind)
    return tuple(found)


Evidence = HttpAnswer | GrpcAnswer | PoolEvidence | DnsAnswers | StoreState | SeriesEvidence


@dataclass(frozen=True)
class Result:
    """What one probe found out about one check in one round.

    `detail` is the sentence a person reads; `key_fact` is the few characters a panel row
    has room for ("200", "127.0.0.1", "pool 3/3 UP"); `facts` is everything structured,
    JSON-serialisable, for the detail screen and the JSON output.
    """

    check_id: str
    status: Status
    detail: str
    latency_ms: float | None = None
    key_fact: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)
    error_kind: ErrorKind | None = None
    started_at: float = 0.0  # wall clock (time.time()) when the probe started
    evidence: Evidence | None = None  # what the diagnosis reads (typed; facts are for display)
    confirmations: int = 0  # re-probes after a status change that agreed with it so far
    confirmed: bool = True  # False while a new status awaits its confirmation re-probes
    changed_at: float | None = None  # wall clock of the probe that first saw this status (None: unknown)
    # wall clock when this result was known (the probe's answer or timeout, or the moment a
    # silent probe became suspected); 0.0: unknown. A verdict compares results by it.
    finished_at: float = 0.0

    def __post_init__(self) -> None:
        """Make every text a server could have sent terminal-safe, here and only here.

        This is the one place server text becomes output text: whatever a probe put in
        `detail`, `key_fact` or `facts` (an ErrorResponse, an INFO field, a stats CSV cell)
        loses its control characters, C1 bytes and bidi overrides before any renderer,
        the timeline or the dashboard can see it (see safetext)."""
        object.__setattr__(self, "detail", safe_value(self.detail))
        object.__setattr__(self, "key_fact", safe_value(self.key_fact))
        object.__setattr__(self, "facts", safe_value(dict(self.facts)))

    def stamped(self, **changes: Any) -> Result:
        """This result with only its times or confirmation bookkeeping changed.

        The engine stamps every result three or four times on its way in (started,
        finished, changed, confirmed); `dataclasses.replace` would clean every text again
        each time (15 % of an http probe's CPU in a profile). No text changes here, so
        the copy needs no cleaning."""
        if not changes.keys() <= _STAMPS:
            raise TypeError(f"stamped() changes only {sorted(_STAMPS)}, not {sorted(changes.keys() - _STAMPS)}")
        copy = object.__new__(Result)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy

    def with_fact(self, name: str, value: float | int | bool | None) -> Result:
        """This result with one more number among its facts (the loop's lag, say)."""
        copy = self.stamped()
        copy.__dict__["facts"] = {**self.facts, safe_value(name): value}
        return copy

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


_STAMPS = frozenset({"started_at", "finished_at", "changed_at", "confirmed", "confirmations"})


@dataclass(frozen=True)
class Snapshot:
    """The latest result of every check of a layout after one probe round."""

    layout: Layout
    results: Mapping[str, Result]
    taken_at: float  # wall clock when the round finished
    round: int = 1
    duration: float = 0.0  # seconds the round took, start to finish

    def result(self, check: Check) -> Result | None:
        return self.results.get(check.id)

    @property
    def overran(self) -> str | None:
        """The note that this round took longer than the layout's interval, or None.

        Rounds never overlap, so such a round silently stretches the interval: the output
        says so ("this round took 33s, longer than the 10s interval")."""
        interval = self.layout.interval
        if not self.duration or self.duration <= interval:
            return None
        return f"this round took {_seconds(self.duration)}, longer than the {_seconds(interval)} interval"


def _seconds(value: float) -> str:
    """33.04 -> '33s', 0.25 -> '0.25s': a round's length, to the hundredth of a second."""
    return f"{round(value, 2):g}s"


# --------------------------------------------------------------------------- targets
# What a check's target parses into (kinds.py does the parsing).


@dataclass(frozen=True)
class Address:
    """host:port, where host is an IP or a name; IPv6 is written [addr]:port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_ip(self) -> bool:
        return is_ip(self.host)


@dataclass(frozen=True)
class Url:
    """An http(s) URL split into the parts a probe needs; `raw` is what the user wrote."""

    raw: str
    scheme: str
    host: str
    port: int
    path: str  # path plus query, never empty

    @property
    def address(self) -> Address:
        return Address(self.host, self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.raw


@functools.lru_cache(maxsize=4096)
def is_ip(host: str) -> bool:
    """Cached: every probe asks it of its target's host, and the answer never changes."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_of(target: Any) -> str | None:
    """The host name a target addresses, or None when it is an IP (or has no host)."""
    host = getattr(target, "host", None)
    if isinstance(target, str):
        host = None
    if not host or is_ip(host) or host == "local":
        return None
    return host


# --------------------------------------------------------------------------- the layout
# The declared truth about a stack, as layout.py builds it from the YAML file.

ROLES = ("dns", "lb", "backend", "db", "cache", "other")
DEFAULT_INTERVAL = 5.0
DEFAULT_TIMEOUT = 3.0
# Confirmation re-probes: a check whose status just changed is probed again at once and
# then every CONFIRM_INTERVAL until CONFIRM_RETRIES re-probes agree (Nagios soft -> hard).
CONFIRM_RETRIES = 2
CONFIRM_INTERVAL = 0.25
# Suspecting a silent probe before its timeout (suspicion.py). Chosen with
# bench/false_alarms.py (10 min at 1 s on a real HAProxy stack on a shared 2-core machine):
# fast checks peaked at 25-40 ms, so 300 ms keeps a 7x margin; threshold 8 (Akka's and
# Cassandra's) never crossed inside a real answer, nor did 5; min_spread matters only for
# slow steady checks (x4 their latency at threshold 8).
SUSPECT_THRESHOLD = 8.0
SUSPECT_MIN_SPREAD = 0.25
SUSPECT_MIN_SILENCE = 0.3
SUSPECT_MIN_SAMPLES = 5
MAX_SUSPECT_THRESHOLD = 15.0  # a chance of 10^-15: about the last a double tells from certainty
SUSPECT_WINDOW = 30  # the answers a check is judged by: its latest, at most this many
MIN_TIMEOUT = 0.01  # below 10 ms a timeout measures this process's scheduling, not the target


@dataclass(frozen=True)
class Check:
    """One thing to probe. `target` is what the user wrote; `address` is it parsed."""

    type: str
    target: str
    name: str
    layer: str
    timeout: float
    warn_ms: float | None
    options: Any  # the check type's options dataclass
    address: Any  # the parsed target: Url, Address or str depending on the type
    line: int = 0

    @functools.cached_property
    def id(self) -> str:
        """Cached (in the instance's dict, which a frozen dataclass allows): the engine
        looks a check up by it several times a probe."""
        return f"{self.layer}/{self.name}"

    @property
    def hostname(self) -> str | None:
        """The DNS name this check depends on, or None when it addresses an IP."""
        return host_of(self.address)


@dataclass(frozen=True)
class Layer:
    name: str
    role: str
    checks: tuple[Check, ...]
    line: int = 0


@dataclass(frozen=True)
class SuspectSettings:
    """When a probe that has not answered yet is suspected (layout `suspect:`).

    A check is suspected once the chance that its answer is merely late falls below
    10^-threshold (φ accrual), judged on its recent answers as a log-normal whose spread
    (the standard deviation of ln latency) is at least `min_spread`; never before
    `min_silence` (seconds), never without `min_samples` answers, never at or after the
    timeout."""

    threshold: float = SUSPECT_THRESHOLD
    min_spread: float = SUSPECT_MIN_SPREAD
    min_silence: float = SUSPECT_MIN_SILENCE
    min_samples: int = SUSPECT_MIN_SAMPLES


@dataclass(frozen=True)
class Layout:
    name: str
    layers: tuple[Layer, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    description: str = ""
    resolver: Address | None = None
    path: str = ""
    confirm_retries: int = CONFIRM_RETRIES
    confirm_interval: float = CONFIRM_INTERVAL
    # (path, bytes) of every secret file the loader read (`secret_file`), read once when the
    # layout loads so that the redactor masks them from the start; never shown (repr=False)
    file_secrets: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    # what `lint` warns about without refusing the layout (a credential written in it), each
    # as "file:line: where: message — fix", built by the loader, which knows the lines
    warnings: tuple[str, ...] = ()
    suspect: SuspectSettings | None = SuspectSettings()  # None: `suspect: off`

    def checks(self) -> Iterator[Check]:
        for layer in self.layers:
            yield from layer.checks

    def check(self, check_id: str) -> Check:
        for check in self.checks():
            if check.id == check_id:
                return check
        raise KeyError(check_id)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def layers_with_role(self, role: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.role == role]

    def declared_backends(self, layer: str | None = None) -> list[tuple[Check, Address]]:
        """The address of every check of the backend layers (or of one named layer): what
        an LB pool is compared with. Checks without a network target are skipped."""
        layers = [self.layer(layer)] if layer else self.layers_with_role("backend")
        out = []
        for each in layers:
            for check in each.checks:
                target = check.address
                if isinstance(target, Address):
                    out.append((check, target))
                elif hasattr(target, "host") and hasattr(target, "port"):
                    out.append((check, Address(target.host, target.port)))
        return out

    def literal_secrets(self) -> list[str]:
        """Credentials written in the layout itself (an http check's Authorization header):
        each check's options say which of their values are (a `literal_secrets()` method)."""
        out: list[str] = []
        for check in self.checks():
            found = getattr(check.options, "literal_secrets", None)
            if callable(found):
                out += found()
        return out

    def file_secret(self, path: str) -> bytes | None:
        """The secret the loader read from `path` (None when it did not read that file)."""
        return next((data for named, data in self.file_secrets if named == path), None)

    def secret_file_paths(self) -> set[str]:
        """Paths of the secret files the checks name (read or not: lint may lack them)."""
        return self._secret_options("reads_a_secret")

    def secret_env_names(self) -> set[str]:
        """Names of the environment variables whose values must never be shown."""
        return self._secret_options("names_a_secret")  # EnvName options

    def _secret_options(self, flag: str) -> set[str]:
        """The values of every check option whose kind has `flag` set."""
        names: set[str] = set()
        for check in self.checks():
            for name in _flagged_fields(type(check.options), flag):
                value = getattr(check.options, name)
                if isinstance(value, tuple):  # a mapping of names to variables (headers_env)
                    names.update(env for _, env in value)
                elif value:
                    names.add(value)
        return names


def _flagged_fields(options: type, flag: str) -> tuple[str, ...]:
    """The fields of an options dataclass whose kind has `flag` set: asked for every check
    of a layout (three times by `lint`), found once per options class."""
    found = _FLAGGED.get((options, flag))
    if found is None:
        fields = dataclasses.fields(options)
        found = _FLAGGED[options, flag] = tuple(f.name for f in fields if getattr(f.metadata.get("kind"), flag, False))
    return found


_FLAGGED: dict[tuple[type, str], tuple[str, ...]] = {}
