"""Keeps secrets out of every output.

Secrets reach stackscope only through environment variables and secret files named in
the layout (a secret file is read when the layout loads, layout.py). The
engine passes every Result through a Redactor before anyone else sees it, so a server
that echoes a password back in an error message, or a probe that puts one in a fact,
still cannot leak it into the TUI, a report, the timeline or a log.

That last pass cannot see a secret a probe already cut short ("id=correct-hor…"), so
text a server sent is redacted *before* it is shortened: the engine makes the probe's
redactor the `active()` one while the probe runs, and `probes.common.printable` (the one
function that renders and truncates server bytes) applies it first. As a second line of
defence the Redactor also masks a secret prefix left in front of a truncation mark.

A server may also echo *part* of a password ("id=S3cr3t-", "t-Value"), and a person may
write one into a layout (a check's name, a timeout, a `password_env` given the secret
itself). So the Redactor masks, besides every whole secret, every run of text made of
pieces of a secret at least MIN_PARTIAL characters long (any 6 consecutive characters of
a secret, wherever they appear), and the layout loader passes the layout's own text and
its error messages through the same Redactor (`layout.py`). Masking errs on the side of
safety: ordinary words that happen to share 6 characters with a secret are masked too.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import dataclasses
import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackscope.model import Layout, Result

MASK = "«redacted»"
ELLIPSIS = "…"
# A prefix this long in front of a truncation mark is masked; shorter ones would make
# every "…" after an ordinary word eat the word (a 1-2 character prefix says little).
MIN_PREFIX = 3
# Any run of this many consecutive characters of a secret is masked wherever it appears
# (a partial echo). Shorter pieces are too common in ordinary text to mask on sight; a
# secret shorter than this is masked whole only (and the commands warn about it).
MIN_PARTIAL = 6


class Redactor:
    def __init__(self, secrets: Iterable[str] = (), *, whole_only: Iterable[str] = ()) -> None:
        """`secrets` are masked whole and in pieces (partial echoes); `whole_only` are
        values that may be secrets (masked whole only, so a guess never garbles text)."""
        self._given = [s for s in secrets if s]
        self._whole_only = [s for s in whole_only if s]
        variants: set[str] = set(self._whole_only)
        plain: set[str] = set()  # the variants a server could echo a piece of
        for secret in self._given:
            if not secret:
                continue
            forms = {secret, secret.encode().decode("latin-1")}  # latin-1: how printable() shows non-ASCII
            if ":" in secret:  # user:password -> the password alone is secret too
                forms.add(secret.split(":", 1)[1])
            plain |= forms
            variants |= forms | {base64.b64encode(secret.encode()).decode()}
        variants.discard("")
        # every MIN_PARTIAL-character piece of every secret, for the partial-echo scan
        self._pieces = {
            form[i : i + MIN_PARTIAL]
            for form in plain
            if len(form) >= MIN_PARTIAL
            for i in range(len(form) - MIN_PARTIAL + 1)
        }
        # Every length is masked: a secret in output is never acceptable, however short it
        # is (a 3-character Redis password echoed in an error is still the password).
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted(variants, key=len, reverse=True)
        self.longest = len(self._secrets[0]) if self._secrets else 0

    def add(self, secret: str) -> None:
        """Mask `secret` too, from now on: a secret a probe reads itself (a Varnish CLI
        secret file), registered before the probe uses it."""
        if secret and secret not in self._given:
            self.__init__([*self._given, secret], whole_only=self._whole_only)  # type: ignore[misc]

    @classmethod
    def for_layout(cls, layout: Layout, environ: Mapping[str, str]) -> Redactor:
        """Every secret the layout refers to: its `*_env` variables' values, the secret files
        the loader read, and the credentials written literally in the layout (an
        Authorization in `headers:`): all are masked in every result."""
        from_env = [environ[name] for name in layout.secret_env_names() if environ.get(name)]
        from_files = [form for _, data in layout.file_secrets for form in file_secret_forms(data)]
        return cls([*from_env, *from_files, *layout.literal_secrets()])

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str, *, partial: bool = True) -> str:
        """`value` with every secret masked, and (with `partial`) every partial echo."""
        if not self._secrets:
            return value
        spans = self.spans(value, partial=partial)
        if spans:
            pieces, at = [], 0
            for start, end in spans:
                pieces += [value[at:start], MASK]
                at = end
            value = "".join(pieces) + value[at:]
        if ELLIPSIS in value:
            value = self._cut_prefixes(value)
        return value

    def spans(self, value: str, *, partial: bool = True) -> list[tuple[int, int]]:
        """(start, end) of every secret in `value` and of every run made of pieces of a
        secret (MIN_PARTIAL characters or more), sorted and merged: never overlapping.
        Text that is already a MASK is left alone, so masking twice changes nothing."""
        found: list[tuple[int, int]] = []
        for secret in self._secrets:
            start = value.find(secret)
            while start >= 0:  # each step moves past a match: at most len(value) steps
                found.append((start, start + len(secret)))
                start = value.find(secret, start + 1)
        if partial and self._pieces:
            found += [
                (i, i + MIN_PARTIAL)
                for i in range(len(value) - MIN_PARTIAL + 1)
                if value[i : i + MIN_PARTIAL] in self._pieces
            ]
        masks = [(i, i + len(MASK)) for i in _find_all(value, MASK)]
        found = [(a, b) for a, b in found if not any(a < m_end and m_start < b for m_start, m_end in masks)]
        return _merged(found)

    def _cut_prefixes(self, value: str) -> str:
        """Mask the start of a secret left in front of a truncation mark ("pw=hunt…")."""
        pieces = value.split(ELLIPSIS)
        for i, piece in enumerate(pieces[:-1]):
            for secret in self._secrets:
                shortest = min(MIN_PREFIX, len(secret))
                cut = next((k for k in range(len(secret) - 1, shortest - 1, -1) if piece.endswith(secret[:k])), 0)
                if cut:
                    piece = piece[:-cut] + MASK
                    break
            pieces[i] = piece
        return ELLIPSIS.join(pieces)

    def value(self, value: Any) -> Any:
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # typed evidence
            return dataclasses.replace(
                value, **{f.name: self.value(getattr(value, f.name)) for f in dataclasses.fields(value)}
            )
        return value

    def result(self, result: Result) -> Result:
        if not self._secrets:
            return result
        return dataclasses.replace(
            result,
            detail=self.text(result.detail),
            key_fact=self.text(result.key_fact),
            facts=self.value(dict(result.facts)),
            evidence=self.value(result.evidence),
        )

    def layout(self, layout: Layout) -> Layout:
        """`layout` with every secret masked in the text it shows: its name and description,
        each layer's name, each check's name and target as written. What a probe connects
        to (`Check.address`) and the options are left whole: they are never printed as is.
        Only whole secrets are masked here: a name a person chose ("secret-store") must not
        lose a word because it shares six letters with a password."""
        if not self._secrets:
            return layout
        whole = functools.partial(self.text, partial=False)
        layers = []
        for layer in layout.layers:
            name = whole(layer.name)
            checks = tuple(
                dataclasses.replace(check, name=whole(check.name), target=whole(check.target), layer=name)
                for check in layer.checks
            )
            layers.append(dataclasses.replace(layer, name=name, checks=checks))
        return dataclasses.replace(
            layout, name=whole(layout.name), description=whole(layout.description), layers=tuple(layers)
        )


def file_secret_forms(data: bytes) -> list[str]:
    """The texts a secret file's bytes may show up as: as read (a final newline kept) and
    without its final newline (how `$(cat file)` and a person writing it down give it)."""
    text = data.decode("utf-8", "replace")
    return [text, text.rstrip("\r\n")]


def _find_all(value: str, needle: str) -> list[int]:
    at, out = value.find(needle), []
    while at >= 0:
        out.append(at)
        at = value.find(needle, at + 1)
    return out


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching (start, end) spans joined into one, sorted."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


# Request and response headers whose values are credentials by their name: shown only by
# size where headers become facts, and, written literally in a layout's `headers:`,
# registered as secrets (a server echoing one under another name is masked too).
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "www-authenticate"}
)
_AUTH_SCHEMES = ("authorization", "proxy-authorization")


def sensitive_header(name: str, extra: Iterable[str] = ()) -> bool:
    """Whether a header's value is a credential: one of SENSITIVE_HEADERS or of `extra`
    (a check's `sensitive_headers`), names compared case-insensitively."""
    lowered = name.lower()
    return lowered in SENSITIVE_HEADERS or lowered in {each.lower() for each in extra}


def header_secrets(headers: Iterable[tuple[str, str]], extra: Iterable[str] = ()) -> list[str]:
    """The secrets in the sensitive ones of `headers` as written in a layout: the whole
    value, the credential after an Authorization scheme ("Bearer <token>": the token, and a
    Basic token's user:password), each cookie's value. Registered with the Redactor so an
    echo of any of them, under any header name or in a body, is masked."""
    extra = tuple(extra)
    out: list[str] = []
    for name, value in headers:
        if not value or not sensitive_header(name, extra):
            continue
        out.append(value)
        lowered = name.lower()
        scheme, _, credential = value.partition(" ")
        if lowered in _AUTH_SCHEMES and credential.strip():
            out.append(credential.strip())
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    out.append(base64.b64decode(credential.strip(), validate=True).decode())
        elif lowered in ("cookie", "set-cookie"):
            out += [pair.partition("=")[2].strip() for pair in value.split(";") if "=" in pair]
    return [each for each in out if each]


# A secret shorter than this is masked all the same (safety first), but its few characters
# are common enough to be masked inside ordinary words, so the commands say so.
SHORT_SECRET = 6


def short_secret_warnings(layout: Layout, environ: Mapping[str, str]) -> list[str]:
    """One line per secret variable that is set to something shorter than SHORT_SECRET
    characters (or holds user:password with a password that short). Never the value."""
    lines = []
    for name in sorted(layout.secret_env_names()):
        value = environ.get(name)
        if not value:
            continue
        password = value.split(":", 1)[1] if ":" in value else None
        if len(value) < SHORT_SECRET:
            what = name
        elif password and len(password) < SHORT_SECRET:
            what = f"the password in {name}"
        else:
            continue
        lines.append(
            f"{what} is shorter than {SHORT_SECRET} characters: every occurrence of it in output is "
            "masked, which may garble it"
        )
    return lines


NOTHING = Redactor()
_active: contextvars.ContextVar[Redactor] = contextvars.ContextVar("stackscope_redactor", default=NOTHING)


def active() -> Redactor:
    """The redactor of the probe running in this task (one that masks nothing outside a probe)."""
    return _active.get()


@contextlib.contextmanager
def activated(redactor: Redactor) -> Iterator[None]:
    """Make `redactor` the active one for the code (and the tasks it starts) inside."""
    token = _active.set(redactor)
    try:
        yield
    finally:
        _active.reset(token)
