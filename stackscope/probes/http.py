"""`http`: one safe request (GET, HEAD or OPTIONS), judged on status, body and headers.

Host names are resolved through the layout's resolver and the request goes to the IP
with the original Host header and TLS SNI, so the check sees exactly the address DNS
hands out. The body read is capped at 64 KiB, each phase (dns, connect, tls, ttfb) is
timed, and with `identity_header` plus `samples` the probe records which server answered
each of N requests (misrouting evidence for a load balancer). The wire work is in
httpclient.py.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from stackscope.kinds import (
    Boolean,
    CheckSpec,
    Choice,
    EnvHeaderMap,
    EnvName,
    FilePath,
    HeaderMap,
    HeaderName,
    Integer,
    Invalid,
    StatusCodes,
    Text,
    TextList,
    UrlKind,
    option,
    parse_url,
    sendable_header_value,
)
from stackscope.model import NO_IDENTITY, ErrorKind, HttpAnswer, Result, Status, Url, store_errors_in
from stackscope.probes.common import Deadline, ProbeFailure, basic_auth, printable, reach, result
from stackscope.probes.httpclient import HttpResponse, fetch
from stackscope.redact import header_secrets, sensitive_header
from stackscope.safetext import terminal_safe

BODY_CAP = 64 * 1024
MAX_REDIRECTS = 5
# Request headers that carry credentials, never sent to another origin after a redirect
# (curl's rule since 7.83: another scheme, host or port is another origin).
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")


@dataclass(frozen=True)
class HttpOptions:
    method: str = option(
        Choice("GET", "HEAD", "OPTIONS", case_insensitive=True),
        "GET",
        "Request method; only safe methods, so a probe never changes anything.",
    )
    headers: tuple[tuple[str, str], ...] = option(
        HeaderMap(),
        (),
        "Request headers; each replaces the probe's own of the same name (Host, User-Agent, "
        "Accept-Encoding), names compared case-insensitively.",
    )
    headers_env: tuple[tuple[str, str], ...] = option(
        EnvHeaderMap(),
        (),
        "Request headers whose values are secrets (X-Api-Key: API_KEY, Authorization: API_BEARER), each "
        "read from the environment variable named: sent like `headers`, masked like `sensitive_headers`.",
    )
    expect_status: tuple[int, ...] = option(StatusCodes(), (), "Accepted status codes (default: any 2xx or 3xx).")
    expect_body: str | None = option(Text(), None, "A substring the body must contain (first 64 KiB).")
    expect_header: tuple[tuple[str, str], ...] = option(
        HeaderMap(request=False), (), "Response headers that must be present, each containing the given text."
    )
    verify_tls: bool = option(Boolean(), True, "Verify the server certificate.")
    ca: str | None = option(FilePath(must_exist=True), None, "Extra CA file (PEM) to trust.")
    follow_redirects: bool = option(Boolean(), False, "Follow up to 5 redirects.")
    identity_header: str | None = option(
        HeaderName(), None, "Response header naming the server that answered (e.g. X-Served-By)."
    )
    samples: int = option(
        Integer(minimum=1, maximum=100), 1, "Requests per probe; with identity_header shows which servers answer."
    )
    auth_env: str | None = option(EnvName(), None, "Environment variable holding user:password for basic auth.")
    http2: str | None = option(
        Choice("auto", "true", "prior-knowledge"),
        None,
        "HTTP/2: auto offers h2 by ALPN over TLS and falls back to HTTP/1.1; true requires h2; "
        "prior-knowledge speaks h2c on cleartext (default: HTTP/1.1 only).",
    )
    expect_protocol: str | None = option(
        Choice("h2", "http/1.1"), None, "The protocol the answer must come in (catches an LB that downgrades)."
    )
    sensitive_headers: tuple[str, ...] = option(
        TextList(HeaderName()),
        (),
        "Headers of `headers` that carry credentials (an API key): like Authorization and Cookie, they are "
        "not sent after a redirect to another scheme, host or port, and their values are masked in every output.",
    )

    def literal_secrets(self) -> list[str]:
        """The credentials written in `headers` (Authorization, Cookie, X-Api-Key, … and the
        `sensitive_headers`): Layout.literal_secrets() registers them with the Redactor."""
        return header_secrets(self.headers, self.sensitive_headers)

    def private_headers(self) -> tuple[str, ...]:
        """The names, besides Authorization and the rest, whose values are credentials."""
        return (*self.sensitive_headers, *(name for name, _ in self.headers_env))


def _validate(url: Url, options: HttpOptions) -> list[tuple[str, str, str]]:
    problems = []
    if options.samples > 1 and not options.identity_header:
        problems.append(
            (
                "samples",
                "samples needs identity_header to tell the answering servers apart",
                "add identity_header: X-Served-By (or the header your servers set)",
            )
        )
    if options.ca and not options.verify_tls:
        problems.append(("ca", "ca has no effect with verify_tls: false", "remove one of the two"))
    if options.method.upper() == "HEAD" and options.expect_body is not None:
        problems.append(
            (
                "expect_body",
                "a HEAD response has no body, so expect_body can never match",
                "use method: GET, or remove expect_body",
            )
        )
    if options.expect_protocol == "h2" and options.http2 is None:
        problems.append(("expect_protocol", "HTTP/2 is never offered without http2", "add http2: auto"))
    if options.http2 in ("auto", "true") and url.scheme == "http":
        problems.append(
            (
                "http2",
                f"http2: {options.http2} negotiates h2 by TLS ALPN, which a http:// URL has not",
                "use an https:// URL, or http2: prior-knowledge for h2c",
            )
        )
    given = {name.lower() for name, _ in options.headers}
    for name, _ in options.headers_env:
        if name.lower() in given:
            problems.append(
                ("headers_env", f"header '{name}' is in both headers and headers_env", "keep it in headers_env only")
            )
    given |= {name.lower() for name, _ in options.headers_env}
    for name in options.sensitive_headers:
        if name.lower() not in given:
            problems.append(
                (
                    "sensitive_headers",
                    f"'{name}' is not one of the headers this check sends",
                    "list only names from headers (Authorization and Cookie are sensitive already)",
                )
            )
    if options.auth_env and any(name.lower() == "authorization" for name, _ in options.headers + options.headers_env):
        problems.append(
            ("auth_env", "auth_env and an Authorization header both set the credentials", "keep one of the two")
        )
    return problems


# identity: no compression, so the 64 KiB cap applies to what travels on the wire
_DEFAULT_HEADERS = (("User-Agent", "stackscope"), ("Accept-Encoding", "identity"))


def request_headers(default_host: str, given: tuple[tuple[str, str], ...]) -> tuple[str, list[tuple[str, str]]]:
    """The Host header and the other headers to send: each header the layout gives
    replaces the probe's own of the same name (case-insensitively), so none goes twice
    (two Host headers are a malformed request; two User-Agents confuse logs)."""
    given_names = {name.lower() for name, _ in given}
    host = next((value for name, value in given if name.lower() == "host"), default_host)
    headers = [pair for pair in _DEFAULT_HEADERS if pair[0].lower() not in given_names]
    headers += [(name, value) for name, value in given if name.lower() != "host"]
    return host, headers


@dataclass
class _Exchange:
    url: Url
    ip: str
    response: HttpResponse
    resolved: dict[str, Any]
    dropped: tuple[str, ...] = ()  # credential headers held back from this (other) origin


def _auth_header(check, ctx) -> list[tuple[str, str]]:
    env = check.options.auth_env
    if not env:
        return []
    return [basic_auth(ctx.secret(env) or "")]


def _env_headers(check, ctx) -> list[tuple[str, str]]:
    """headers_env's headers, each valued from its variable; a value HTTP cannot carry (a
    line break) is UNKNOWN naming the variable, never the value."""
    out = []
    for name, env in check.options.headers_env:
        value = ctx.secret(env) or ""
        if not value or not sendable_header_value(value):
            what = "is not set" if ctx.secret(env) is None else "is empty" if not value else "cannot be sent in HTTP"
            raise ProbeFailure(
                ErrorKind.CONFIG,
                f"{env} (header {name}) {what}: set it to printable ASCII on one line",
                key_fact="bad header variable",
                status=Status.UNKNOWN,
            )
        out.append((name, value))
    return out


def origin(url: Url) -> tuple[str, str, int]:
    return url.scheme, url.host.lower(), url.port


def headers_for(check, ctx, same_origin: bool) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The layout's headers (and auth_env's Authorization) to send to a URL, and the names
    left out. To another origin than the check's own URL — a redirect elsewhere — the
    credentials stay behind, as curl does: Authorization, Cookie, Proxy-Authorization and
    the headers the layout marks sensitive; and the layout's Host, which names the
    original server."""
    options: HttpOptions = check.options
    given = options.headers + tuple(_env_headers(check, ctx)) + tuple(_auth_header(check, ctx))
    if same_origin:
        return given, []
    private = set(CREDENTIAL_HEADERS) | {name.lower() for name in options.private_headers()} | {"host"}
    kept = tuple(pair for pair in given if pair[0].lower() not in private)
    dropped = [name for name, _ in given if name.lower() in private and name.lower() != "host"]
    return kept, dropped


async def _exchange(check, ctx, url: Url, deadline: Deadline, same_origin: bool = True) -> _Exchange:
    options: HttpOptions = check.options
    alpn = ("h2", "http/1.1") if options.http2 else ()
    endpoint = await reach(ctx, url, deadline, verify=options.verify_tls, ca=options.ca, alpn=alpn)
    ip, resolved = endpoint.ip, endpoint.facts
    where = f"{url.host}:{url.port}" if ip == url.host else f"{url.host}:{url.port} ({ip})"
    given, dropped = headers_for(check, ctx, same_origin)
    host_header, headers = request_headers(url.host_header, given)
    request: dict[str, Any] = dict(
        deadline=deadline,
        method=options.method.upper(),
        target=url.path,
        host_header=host_header,
        headers=headers,
        ssl_context=endpoint.ssl_context,
        sni=endpoint.sni,
        body_cap=BODY_CAP,
        where=where,
    )
    try:
        if options.http2:
            from stackscope.probes import h2client

            response = await h2client.fetch(ip, url.port, mode=options.http2, scheme=url.scheme, **request)
        else:
            response = await fetch(ip, url.port, **request)
    except ProbeFailure as failure:
        failure.facts.update(resolved)
        raise
    if resolved:
        response.phases = {"dns": resolved["resolved"]["ms"], **response.phases}
    return _Exchange(url, ip, response, resolved, tuple(dropped))


async def _request(check, ctx, deadline: Deadline) -> tuple[_Exchange, list[str], list[str]]:
    """One request, following redirects when asked; returns the final exchange, the
    redirect chain, and the credential headers held back from other origins on the way."""
    url: Url = check.address
    home = origin(url)
    chain: list[str] = []
    dropped: list[str] = []
    for _ in range(MAX_REDIRECTS + 1):
        exchange = await _exchange(check, ctx, url, deadline, same_origin=origin(url) == home)
        dropped += [name for name in exchange.dropped if name not in dropped]
        status = exchange.response.status
        location = exchange.response.header("location")
        if not (check.options.follow_redirects and status in (301, 302, 303, 307, 308) and location):
            return exchange, chain, dropped
        chain.append(f"{status} → {location}")
        try:
            url = parse_url(urljoin(url.raw, location))
        except (Invalid, ValueError):  # urljoin refuses unbalanced IPv6 brackets itself
            raise ProbeFailure(
                ErrorKind.PROTOCOL,
                f"redirect to an unusable location: {terminal_safe(location)}",
                key_fact="bad redirect",
            ) from None
    raise ProbeFailure(ErrorKind.PROTOCOL, f"more than {MAX_REDIRECTS} redirects", key_fact="redirect loop")


def _shown_header(name: str, value: str, options: HttpOptions) -> str:
    """A header value as any output may show it: a credential (by its name: Cookie,
    Authorization, X-Api-Key, the check's `sensitive_headers`) only by its size."""
    return f"<{len(value)} bytes hidden>" if sensitive_header(name, options.private_headers()) else value


def _safe_headers(response: HttpResponse, options: HttpOptions) -> dict[str, str]:
    """Response headers for the facts, with cookies and credentials shown only by size."""
    out: dict[str, str] = {}
    for name, value in response.headers:
        shown = _shown_header(name, value, options)
        out[name] = f"{out[name]}, {shown}" if name in out else shown
    return out


_TAG = re.compile(r"<(script|style)\b.*?</\1>|<[^>]*>", re.S | re.I)
_SIGNATURE = re.compile(r"^(nginx|apache|haproxy|openresty|envoy)(/[\w.]+)?$", re.I)


def _body_line(body: bytes, status_text: str) -> str:
    """The message an error page carries, for the one-line detail.

    Error pages are usually HTML that repeats the status ("<h1>503 Service
    Unavailable</h1>No server is available…"); keep only what adds to the status line.
    """
    text = body[:4096].decode("utf-8", "replace")
    if "<" in text and ">" in text:
        text = _TAG.sub(" ", text)
    text = " ".join(text.replace(status_text, " ").split())
    if not text or _SIGNATURE.match(text):
        return ""
    return printable(text.encode("utf-8", "replace"), 100)


def _protocol(response: HttpResponse) -> str:
    return "h2" if response.http_version == "HTTP/2" else "http/1.1"


def _judge(check, response: HttpResponse) -> tuple[Status, str, ErrorKind | None]:
    options: HttpOptions = check.options
    code = response.status
    status_text = response.status_text
    if options.expect_status:
        status_ok = code in options.expect_status
        expected = " or ".join(str(c) for c in options.expect_status)
    else:
        status_ok = 200 <= code < 400
        expected = "2xx or 3xx"
    if not status_ok:
        line = _body_line(response.body, status_text)
        return (
            Status.CRIT,
            f"{status_text} (expected {expected})" + (f": {line}" if line else ""),
            ErrorKind.HTTP_STATUS,
        )
    if options.expect_body is not None and options.expect_body not in response.body.decode("utf-8", "replace"):
        scope = "first 64 KiB of the body" if response.truncated else "body"
        return Status.CRIT, f"{status_text}, but the {scope} lacks '{options.expect_body}'", ErrorKind.CONTENT
    for name, want in options.expect_header:
        have = response.header(name)
        if have is None:
            return Status.CRIT, f"{status_text}, but header {name} is missing", ErrorKind.CONTENT
        if want not in have:
            shown = _shown_header(name, have, options)
            return Status.CRIT, f"{status_text}, but header {name} is '{shown}', expected '{want}'", ErrorKind.CONTENT
    if options.expect_protocol and _protocol(response) != options.expect_protocol:
        return (
            Status.CRIT,
            f"{status_text}, but over {_protocol(response)}, expected {options.expect_protocol}",
            ErrorKind.CONTENT,
        )
    if response.endless:
        # No Content-Length and still streaming at the cap: an endless body ties up the
        # server and every client that reads it; a merely large one is better declared.
        # (A declared length above the cap is a large file, not a fault: read, cut, OK.)
        return (
            Status.WARN,
            (
                f"{status_text}, but the body did not end within {BODY_CAP // 1024} KiB "
                "(endless or very large response); read stopped"
            ),
            ErrorKind.CONTENT,
        )
    return Status.OK, status_text, None


async def probe(check, ctx) -> Result:
    options: HttpOptions = check.options
    deadline = Deadline(check.timeout)
    identities: Counter[str] = Counter()
    done = 0
    while True:
        exchange, chain, dropped = await _request(check, ctx, deadline)
        done += 1
        if options.identity_header:
            # a response without the header came from no backend (the LB's own error page)
            identities[exchange.response.header(options.identity_header) or NO_IDENTITY] += 1
        status, detail, kind = _judge(check, exchange.response)
        if status is not Status.OK or done >= options.samples or deadline.remaining() <= 0:
            break
    response = exchange.response
    if done == 1 and not chain and response.received_at is not None:
        latency = max(0.0, (response.received_at - deadline.started) * 1000)  # when the bytes arrived
    else:
        latency = deadline.elapsed_ms() / done
    facts: dict[str, Any] = {
        "url": exchange.url.raw,
        "ip": exchange.ip,
        "method": options.method.upper(),
        "status_code": response.status,
        "reason": response.reason,
        "http_version": response.http_version,
        "protocol": _protocol(response),
        "headers": _safe_headers(response, options),
        "phases": response.phases,
        "body_bytes": len(response.body),
        "body_truncated": response.truncated,
        **exchange.resolved,
    }
    if chain:
        facts["redirects"] = chain
    if dropped:
        facts["credentials_dropped_on_redirect"] = dropped
    if options.identity_header:
        served_by = response.header(options.identity_header)
        facts["identity"] = served_by
        facts["identities"] = dict(identities)
        facts["samples"] = done
        if done > 1:
            spread = ", ".join(f"{name} ×{count}" for name, count in identities.most_common())
            detail += f" — {done} requests answered by {spread}"
        elif served_by:
            detail += f" from {served_by}"
    if status is Status.OK:
        detail += f" in {latency:.0f} ms"
    evidence = HttpAnswer(
        status_code=response.status,
        identity=response.header(options.identity_header) if options.identity_header else None,
        identity_header=options.identity_header,
        identities=tuple(identities.items()),
        # a backend's error page that quotes a store's error ties its failure to that store
        store_errors=store_errors_in(response.body[:4096].decode("utf-8", "replace"))
        if status is not Status.OK
        else (),
    )
    return result(
        check,
        status,
        detail,
        latency_ms=latency,
        key_fact=str(response.status),
        facts=facts,
        kind=kind,
        evidence=evidence,
    )


def _warm_up(check, ctx) -> None:
    # Loading the CA store costs ~80 ms of CPU: only for a URL that needs TLS (a redirect
    # to https builds the context when it happens).
    if check.address.scheme == "https":
        alpn = ("h2", "http/1.1") if check.options.http2 else ()
        ctx.ssl_context(verify=check.options.verify_tls, ca_file=check.options.ca, alpn=alpn)


SPEC = CheckSpec(
    key="http",
    doc="Send one safe HTTP request and check status, body and headers.",
    target=UrlKind(),
    options=HttpOptions,
    probe=probe,
    validate=_validate,
    warm_up=_warm_up,
    example="- http: http://127.0.0.1:8080/health\n  expect_status: 200\n  expect_body: ok",
)
