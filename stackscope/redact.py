"""Keeps secrets out of every output.

Secrets reach stackscope only through environment variables named in the layout. The
engine passes every Result through a Redactor before anyone else sees it, so a server
that echoes a password back in an error message, or a probe that puts one in a fact,
still cannot leak it into the TUI, a report, the timeline or a log.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from stackscope.layout import Layout
    from stackscope.model import Result

MASK = "«redacted»"
# Shorter values would shred ordinary words; a secret this short protects nothing anyway.
MIN_SECRET_LENGTH = 4


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.add(secret)
            variants.add(base64.b64encode(secret.encode()).decode())
            if ":" in secret:  # user:password -> the password alone is secret too
                variants.add(secret.split(":", 1)[1])
        # longest first, so a secret containing another is masked whole
        self._secrets = sorted((v for v in variants if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)

    @classmethod
    def for_layout(cls, layout: Layout, environ: Mapping[str, str]) -> Redactor:
        return cls(environ[name] for name in layout.secret_env_names() if environ.get(name))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def value(self, value: Any) -> Any:
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value

    def result(self, result: Result) -> Result:
        if not self._secrets:
            return result
        return dataclasses.replace(result, detail=self.text(result.detail), key_fact=self.text(result.key_fact),
                                   facts=self.value(dict(result.facts)))
