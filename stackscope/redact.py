"""Keeps secrets out of every output.

Secrets reach stackscope only through environment variables named in the layout. The
engine passes every Result through a Redactor before anyone else sees it, so a server
that echoes a password back in an error message, or a probe that puts one in a fact,
still cannot leak it into the TUI, a report, the timeline or a log.

That last pass cannot see a secret a probe already cut short ("id=correct-hor…"), so
text a server sent is redacted *before* it is shortened: the engine makes the probe's
redactor the `active()` one while the probe runs, and `probes.common.printable` (the one
function that renders and truncates server bytes) applies it first. As a second line of
defence the Redactor also masks a secret prefix left in front of a truncation mark.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackscope.layout import Layout
    from stackscope.model import Result

MASK = "«redacted»"
ELLIPSIS = "…"
# A prefix this long in front of a truncation mark is masked; shorter ones would make
# every "…" after an ordinary word eat the word (a 1-2 character prefix says little).
MIN_PREFIX = 3


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.add(secret)
            variants.add(base64.b64encode(secret.encode()).decode())
            variants.add(secret.encode().decode("latin-1"))  # how printable() shows non-ASCII bytes
            if ":" in secret:  # user:password -> the password alone is secret too
                variants.add(secret.split(":", 1)[1])
        variants.discard("")
        # Every length is masked: a secret in output is never acceptable, however short it
        # is (a 3-character Redis password echoed in an error is still the password).
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted(variants, key=len, reverse=True)
        self.longest = len(self._secrets[0]) if self._secrets else 0

    @classmethod
    def for_layout(cls, layout: Layout, environ: Mapping[str, str]) -> Redactor:
        return cls(environ[name] for name in layout.secret_env_names() if environ.get(name))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        if ELLIPSIS in value:
            value = self._cut_prefixes(value)
        return value

    def spans(self, value: str) -> list[tuple[int, int]]:
        """(start, end) of every secret in `value`, longest secrets first, never overlapping."""
        taken: list[tuple[int, int]] = []
        for secret in self._secrets:
            start = value.find(secret)
            while start >= 0:  # each step moves past a match: at most len(value) steps
                end = start + len(secret)
                if not any(start < b and a < end for a, b in taken):
                    taken.append((start, end))
                start = value.find(secret, start + 1)
        return sorted(taken)

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
