"""`tls`: the certificate a server presents: who it names, who signed it, when it ends.

The handshake verifies trust and the host name exactly as a client would. When that
fails the probe connects once more without verification, only to read the certificate,
so the operator sees why it failed *and* what the certificate says (an expired
certificate's end date is the first thing anyone asks for).
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from typing import Any

from stackscope.kinds import AddressKind, Boolean, CheckSpec, FilePath, HostnameKind, Integer, option
from stackscope.model import ErrorKind, Result, Status
from stackscope.probes.common import Deadline, ProbeFailure, open_connection, resolve_host, result, timeout_scope
from stackscope.probes.httpclient import start_tls
from stackscope.safetext import terminal_safe


@dataclass(frozen=True)
class TlsOptions:
    sni: str | None = option(
        HostnameKind(), None, "Server name to send and to check the certificate against (default: the target host)."
    )
    warn_days: int = option(Integer(minimum=0), 14, "Warn when the certificate ends within this many days.")
    verify: bool = option(Boolean(), True, "Require a trusted chain and a matching name.")
    ca: str | None = option(FilePath(must_exist=True), None, "Extra CA file (PEM) to trust.")


def _name(name: Any) -> str:
    """A certificate name for display; the server chose it, so control characters in it
    are replaced (a CN can hold an escape sequence as easily as a header can)."""
    from cryptography.x509.oid import NameOID

    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return terminal_safe(f"CN={cn[0].value}" if cn else name.rfc4514_string() or "(empty)")


def _cert_facts(der: bytes) -> dict[str, Any]:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [terminal_safe(v) for v in san.get_values_for_type(x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    not_after = cert.not_valid_after_utc
    not_before = cert.not_valid_before_utc
    now = dt.datetime.now(dt.timezone.utc)
    return {
        "subject": _name(cert.subject),
        "issuer": _name(cert.issuer),
        "self_signed": cert.subject == cert.issuer,
        "san": names,
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": int((not_after - now).total_seconds() // 86400),
        "serial": format(cert.serial_number, "x"),
    }


async def _handshake(
    host_ip: str, port: int, where: str, sni: str, deadline: Deadline, context: ssl.SSLContext
) -> tuple[bytes, dict[str, Any]]:
    """TCP first, then TLS, as httpclient does: a port that accepts and stays silent is
    "accepted TCP but the TLS handshake did not finish", not "no connection"."""
    reader, writer = await open_connection(host_ip, port, deadline, where=where)
    try:
        try:
            async with timeout_scope(deadline.remaining()):
                reader, writer = await start_tls(reader, writer, context, sni, where)
        except TimeoutError:
            raise ProbeFailure(
                ErrorKind.TIMEOUT,
                f"{where} accepted TCP but the TLS handshake did not finish within {deadline.text}",
                key_fact="tls timeout",
            ) from None
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) or b""
        info = {"protocol": ssl_object.version(), "cipher": (ssl_object.cipher() or ("",))[0]}
    finally:
        writer.transport.abort()  # the certificate is read; never wait on the peer to close
    return der, info


def _matches(name: str, san: list[str], subject: str) -> bool:
    """Whether the certificate names `name` (RFC 6125: SANs, a wildcard for one leftmost
    label; the CN only when there are no SANs)."""
    names = san or ([subject[3:]] if subject.startswith("CN=") else [])
    wanted = name.rstrip(".").lower()
    for pattern in (n.rstrip(".").lower() for n in names):
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def _cert_failure(exc: BaseException | None) -> ssl.SSLCertVerificationError | None:
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


async def probe(check, ctx) -> Result:
    options: TlsOptions = check.options
    deadline = Deadline(check.timeout)
    address = check.address
    sni = options.sni or address.host
    ip, facts = await resolve_host(ctx, address.host, deadline)
    facts.update({"address": str(address), "sni": sni})
    where = str(address)
    problem: str | None = None
    try:
        der, info = await _handshake(
            ip, address.port, where, sni, deadline, ctx.ssl_context(verify=options.verify, ca_file=options.ca)
        )
    except ProbeFailure as failure:
        cert_error = _cert_failure(failure.__cause__ or failure.__context__)
        if cert_error is None and "CERTIFICATE_VERIFY_FAILED" not in failure.detail:
            raise
        problem = cert_error.verify_message if cert_error else failure.detail
        der, info = await _handshake(ip, address.port, where, sni, deadline, ctx.ssl_context(verify=False))
    latency = deadline.elapsed_ms()
    facts.update(info)
    if not der:
        raise ProbeFailure(ErrorKind.TLS, f"{where} completed TLS without a certificate", facts=facts)
    facts.update(_cert_facts(der))
    facts["hostname_match"] = _matches(sni, facts["san"], facts["subject"])  # recorded with verify: false too
    days = facts["days_left"]
    facts["verified"] = problem is None and options.verify
    ends = facts["not_after"][:10]
    if problem is not None:
        if days < 0:
            detail = f"certificate {facts['subject']} expired {-days} days ago ({ends})"
        else:
            detail = f"certificate {facts['subject']} rejected: {problem}"
        return result(
            check, Status.CRIT, detail, latency_ms=latency, key_fact="bad cert", facts=facts, kind=ErrorKind.CERT
        )
    if days < 0:
        return result(
            check,
            Status.CRIT,
            f"certificate {facts['subject']} expired {-days} days ago ({ends})",
            latency_ms=latency,
            key_fact="expired",
            facts=facts,
            kind=ErrorKind.CERT,
        )
    summary = f"{facts['subject']} by {facts['issuer']}, {days} days left (until {ends})"
    if days < options.warn_days:
        return result(
            check,
            Status.WARN,
            f"certificate ends in {days} days: {summary}",
            latency_ms=latency,
            key_fact=f"{days}d left",
            facts=facts,
            kind=ErrorKind.CERT,
        )
    return result(check, Status.OK, summary, latency_ms=latency, key_fact=f"{days}d left", facts=facts)


def _warm_up(check, ctx) -> None:
    import cryptography.x509  # noqa: F401  (a slow first import, kept out of the timing)

    ctx.ssl_context(verify=check.options.verify, ca_file=check.options.ca)
    ctx.ssl_context(verify=False)


SPEC = CheckSpec(
    key="tls",
    doc="Read the TLS certificate a server presents and check trust, name and expiry.",
    target=AddressKind(default_port=443),
    options=TlsOptions,
    probe=probe,
    warm_up=_warm_up,
    example="- tls: auth.example.test:443\n  warn_days: 21",
)
