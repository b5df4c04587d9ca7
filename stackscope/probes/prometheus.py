"""`prometheus`: an instant PromQL query, judged series by series.

    - prometheus: http://127.0.0.1:9090
      query: probe_success{job="blackbox-lb"}
      expect: 1          # every series must have this value (or warn:/crit: thresholds)
      per: zone          # one row per value of this label
      vantage: true      # the `per` values are places the target was probed from

The query goes out as GET /api/v1/query with the project's HTTP client (h11, the answer
read capped at 1 MiB), with the bearer token or user:password of `auth_env` sent only to
that Prometheus (redirects are not followed). Every series is judged on its own and
recorded in the facts (`series`: labels, value, status); the check's status is the worst
of them, and the detail names the failing ones. An empty answer is UNKNOWN ("the query
matched no series": an empty vector is not a zero), and so is a Prometheus that cannot be
reached or rejects the query: that is this check's own problem and never a verdict on the
layer the check belongs to (the diagnosis never blames a layer for UNKNOWN alone).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from stackscope.jsonbound import JsonRefused, NotJson, WrongShape, loads, need, number
from stackscope.kinds import (
    Boolean,
    CheckSpec,
    EnvName,
    FilePath,
    Invalid,
    Kind,
    Number,
    ParseContext,
    Text,
    UrlKind,
    describe,
    option,
)
from stackscope.model import ErrorKind, Result, SeriesEvidence, Status
from stackscope.probes.common import Deadline, ProbeFailure, basic_auth, printable, reach, result
from stackscope.probes.httpclient import fetch

BODY_CAP = 1024 * 1024
MAX_QUERY = 4096
MAX_SERIES_SHOWN = 100  # series kept in the facts; the counts cover them all
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class PromQL(Text):
    """A PromQL expression: bounded length, one line of printable text, no NUL."""

    hint = "a PromQL expression"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        text = super().parse(value, ctx).strip()
        if len(text) > MAX_QUERY:
            raise Invalid(f"the query is {len(text)} characters long, more than {MAX_QUERY}", "shorten it")
        bad = next((ch for ch in text if ord(ch) < 32 and ch not in "\t\n\r" or ord(ch) == 127), None)
        if bad is not None:
            raise Invalid(f"the query contains the control character U+{ord(bad):04X}", "remove it")
        return text

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_QUERY,
            "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]+$",
        }


class LabelName(Kind):
    hint = "a Prometheus label name"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        if not isinstance(value, str) or not LABEL_NAME.match(value):
            raise Invalid(
                f"{describe(value)} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                "write a label of the query's series, like instance or zone",
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": LABEL_NAME.pattern}


@dataclass(frozen=True)
class PrometheusOptions:
    query: str = option(PromQL(), None, "PromQL expression, run as an instant query.", required=True)
    expect: float | None = option(Number(), None, "The value every series must have (e.g. 1 for probe_success).")
    warn: float | None = option(
        Number(), None, "WARN when a series reaches this value (below it, if crit is lower than warn)."
    )
    crit: float | None = option(
        Number(), None, "CRIT when a series reaches this value (below it, if crit is lower than warn)."
    )
    per: str | None = option(
        LabelName(), None, "A label of the series (e.g. instance, zone): each of its values is judged on its own."
    )
    vantage: bool = option(
        Boolean(),
        False,
        "The `per` values are vantage points (where the target was probed from): the verdict says "
        "from how many the layer fails.",
    )
    auth_env: str | None = option(
        EnvName(), None, "Environment variable with a bearer token, or user:password for basic auth."
    )
    verify_tls: bool = option(Boolean(), True, "Verify the server certificate (https).")
    ca: str | None = option(FilePath(must_exist=True), None, "Extra CA file (PEM) to trust.")


def _validate(url, options: PrometheusOptions) -> list[tuple[str, str, str]]:
    problems = []
    if options.expect is None and options.warn is None and options.crit is None:
        problems.append(
            ("query", "a prometheus check needs expect: or warn:/crit: to judge the values", "add expect: 1, say")
        )
    if options.expect is not None and (options.warn is not None or options.crit is not None):
        problems.append(("expect", "expect: and warn:/crit: judge the same values twice", "keep one of the two"))
    if options.vantage and not options.per:
        problems.append(("vantage", "vantage: needs per: (the label that names the vantage point)", "add per: zone"))
    if options.ca and not options.verify_tls:
        problems.append(("ca", "ca has no effect with verify_tls: false", "remove one of the two"))
    return problems


def _auth_header(check, ctx) -> list[tuple[str, str]]:
    env = check.options.auth_env
    if not env:
        return []
    secret = ctx.secret(env) or ""
    if ":" in secret:
        return [basic_auth(secret)]
    return [("Authorization", "Bearer " + secret)]


def _cannot_tell(kind: ErrorKind, detail: str, key_fact: str, facts: dict | None = None) -> ProbeFailure:
    return ProbeFailure(kind, detail, key_fact=key_fact, facts=facts, status=Status.UNKNOWN)


def _text(value: Any, limit: int = 100) -> str:
    return printable(str(value).encode("utf-8", "replace"), limit)


def judge_value(options: PrometheusOptions, value: float) -> tuple[Status, str]:
    """(status, why) for one series' value."""
    shown = _show(value)
    if options.expect is not None:
        if value == options.expect:
            return Status.OK, f"value {shown}"
        return Status.CRIT, f"value {shown}, expected {_show(options.expect)}"
    warn, crit = options.warn, options.crit
    below = warn is not None and crit is not None and crit < warn
    if math.isnan(value):
        return Status.UNKNOWN, "value NaN"

    def reaches(limit: float | None) -> bool:
        return limit is not None and (value <= limit if below else value >= limit)

    sign = "≤" if below else "≥"
    if reaches(crit):
        return Status.CRIT, f"value {shown} {sign} crit {_show(crit)}"
    if reaches(warn):
        return Status.WARN, f"value {shown} {sign} warn {_show(warn)}"
    return Status.OK, f"value {shown}"


def _show(value: float | None) -> str:
    if value is None:
        return ""
    value = float(value)
    return f"{value:g}" if not value.is_integer() or abs(value) >= 1e15 else str(int(value))


def _series(data: Any) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of each series of an instant query's `data`; a wrong shape is an
    UNKNOWN that names where in the answer ("data.result[0] is a string, not an object")."""
    try:
        return _walk(data)
    except WrongShape as exc:
        raise _cannot_tell(
            ErrorKind.PROTOCOL, f"Prometheus answered a result that cannot be read: {exc.reason}", "bad answer"
        ) from None


def _walk(data: Any) -> list[tuple[dict[str, str], float]]:
    data = need(data, dict, "data", "an object")
    kind = data.get("resultType")
    found = data.get("result")
    if kind == "scalar":
        return [({}, _sample(found, "data.result"))]
    if kind == "vector":
        out = []
        for i, item in enumerate(need(found, list, "data.result", "a list")):
            item = need(item, dict, f"data.result[{i}]", "an object")
            metric = need(item.get("metric") or {}, dict, f"data.result[{i}].metric", "an object")
            labels = {_text(k, 60): _text(v) for k, v in metric.items()}
            out.append((labels, _sample(item.get("value"), f"data.result[{i}].value")))
        return out
    raise _cannot_tell(
        ErrorKind.PROTOCOL,
        f"the query returns a {_text(kind, 20)}, not an instant vector or scalar (drop the [range])",
        "not a vector",
    )


def _sample(pair: Any, where: str) -> float:
    """The value of a [time, "value"] pair ("NaN", "+Inf" and "-Inf" included)."""
    pair = need(pair, list, where, "a [time, value] pair")
    if len(pair) != 2:
        raise WrongShape(f"{where} has {len(pair)} items, not a [time, value] pair")
    return number(pair[1], f"{where}[1]")


def _label_set(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    name = labels.get("__name__", "")
    return f"{name}{{{inner}}}" if inner or not name else name


async def _query(check, ctx, deadline: Deadline) -> tuple[Any, float]:
    url = check.address
    options: PrometheusOptions = check.options
    where = f"Prometheus at {url.host}:{url.port}"
    base = url.path.split("?", 1)[0].rstrip("/")
    target = f"{base}/api/v1/query?query={quote(options.query, safe='')}"
    try:
        endpoint = await reach(ctx, url, deadline, verify=options.verify_tls, ca=options.ca)
        response = await fetch(
            endpoint.ip,
            url.port,
            deadline=deadline,
            target=target,
            host_header=url.host_header,
            headers=[("User-Agent", "stackscope"), ("Accept", "application/json"), *_auth_header(check, ctx)],
            ssl_context=endpoint.ssl_context,
            sni=endpoint.sni,
            body_cap=BODY_CAP,
            where=where,
        )
    except ProbeFailure as failure:
        # Prometheus down is this check's own problem, not the layer's: UNKNOWN
        raise _cannot_tell(
            failure.kind, f"cannot query {where}: {failure.detail}", "prometheus " + failure.key_fact, failure.facts
        ) from None
    latency = deadline.elapsed_ms()
    if response.status in (401, 403):
        raise _cannot_tell(ErrorKind.AUTH, f"{where} refused the query: {response.status_text}", "auth")
    if response.truncated:
        raise _cannot_tell(
            ErrorKind.PROTOCOL, f"{where} answered more than {BODY_CAP // 1024} KiB: narrow the query", "too big"
        )
    try:
        answer = loads(response.body, max_bytes=BODY_CAP)
    except NotJson:
        raise _cannot_tell(
            ErrorKind.PROTOCOL,
            f"{where} answered {response.status_text} that is not a Prometheus API answer: {printable(response.body)}",
            "bad answer",
        ) from None
    except JsonRefused as exc:
        raise _cannot_tell(
            ErrorKind.PROTOCOL, f"{where} answered JSON that cannot be read: {exc.reason}", "bad answer"
        ) from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error") if isinstance(answer, dict) else None
        error_type = answer.get("errorType") if isinstance(answer, dict) else None
        raise _cannot_tell(
            ErrorKind.PROTOCOL,
            f"{where} rejected the query ({_text(error_type or response.status, 30)}): {_text(error or '', 160)}",
            "query error",
        )
    return answer.get("data"), latency


async def probe(check, ctx) -> Result:
    options: PrometheusOptions = check.options
    deadline = Deadline(check.timeout)
    data, latency = await _query(check, ctx, deadline)
    found = _series(data)
    facts: dict[str, Any] = {"prometheus": f"{check.address.host}:{check.address.port}", "query": options.query}
    if options.per:
        facts["per"] = options.per
        facts["vantage"] = options.vantage
    if not found:
        raise _cannot_tell(ErrorKind.CONTENT, "the query matched no series", "no series", facts)
    # one row per `per` value (worst of its series), else one per series
    rows: dict[str, dict[str, Any]] = {}
    for labels, value in found:
        key = (labels.get(options.per) or f"(no {options.per})") if options.per else _label_set(labels)
        status, why = judge_value(options, value)
        row = rows.get(key)
        if row is None or status.rank > Status[row["status"].upper()].rank:
            rows[key] = {"key": key, "labels": labels, "value": value, "status": str(status), "why": why}
    ordered = sorted(rows.values(), key=lambda r: r["key"])
    statuses = [Status[r["status"].upper()] for r in ordered]
    worst = Status.worst(statuses)
    failing = [r for r in ordered if r["status"] != "ok"]
    unit = f"{options.per} values" if options.per else "series"
    facts["series"] = [
        {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in row.items()}
        for row in ordered[:MAX_SERIES_SHOWN]
    ]
    facts["series_total"] = len(ordered)
    facts["failing"] = [r["key"] for r in failing]
    total = len(ordered)
    evidence = SeriesEvidence(
        keys=tuple(r["key"] for r in ordered),
        failing=tuple(r["key"] for r in failing),
        vantage=bool(options.per and options.vantage),
        why=next((r["why"] for r in failing if Status[r["status"].upper()] is worst), ""),
    )
    if not failing:
        values = {_show(r["value"]) for r in ordered}
        same = f" (value {values.pop()})" if len(values) == 1 else ""
        detail = f"{ordered[0]['why']}" if total == 1 else f"all {total} {unit} ok{same}"
        key_fact = _show(ordered[0]["value"]) if total == 1 else f"{total}/{total} ok"
        return result(check, Status.OK, detail, latency_ms=latency, key_fact=key_fact, facts=facts, evidence=evidence)
    first = next(r for r in failing if Status[r["status"].upper()] is worst)
    facts["series_detail"] = first["why"]
    if total == 1:
        detail, key_fact = first["why"], _show(first["value"])
    else:
        names = ", ".join(r["key"] for r in failing[:5]) + (f" and {len(failing) - 5} more" if len(failing) > 5 else "")
        detail = f"fails for {len(failing)} of {total} {unit} ({names}): {first['why']}"
        key_fact = f"{total - len(failing)}/{total} ok"
    kind = ErrorKind.CONTENT
    return Result(
        check.id, worst, detail, latency_ms=latency, key_fact=key_fact, facts=facts, error_kind=kind, evidence=evidence
    )


def _warm_up(check, ctx) -> None:
    if check.address.scheme == "https":
        ctx.ssl_context(verify=check.options.verify_tls, ca_file=check.options.ca)


SPEC = CheckSpec(
    key="prometheus",
    doc="Run an instant PromQL query on a Prometheus server and judge every series it returns.",
    target=UrlKind(),
    options=PrometheusOptions,
    probe=probe,
    validate=_validate,
    warm_up=_warm_up,
    example='- prometheus: http://127.0.0.1:9090\n  query: probe_success{job="blackbox"}\n  expect: 1\n  per: zone',
)
