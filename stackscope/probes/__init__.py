"""The registry of check types: the layout key of each type and the module that probes it.

Adding a check type is one module exposing `SPEC` (a `CheckSpec`) plus one line here.
Modules are imported only when a layout uses their type, so `stackscope check` on a
tcp-only layout never pays for TLS or DNS libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stackscope.kinds import CheckSpec

CHECK_TYPES: dict[str, str] = {
    "dns": "stackscope.probes.dns",
    "tcp": "stackscope.probes.tcp",
    "http": "stackscope.probes.http",
    "tls": "stackscope.probes.tls",
    "haproxy": "stackscope.probes.haproxy",
    "nginx": "stackscope.probes.nginx",
    "apache": "stackscope.probes.apache",
    "caddy": "stackscope.probes.caddy",
    "varnish": "stackscope.probes.varnish",
    "postgres": "stackscope.probes.postgres",
    "mysql": "stackscope.probes.mysql",
    "redis": "stackscope.probes.redis",
    "process": "stackscope.probes.process",
    "host": "stackscope.probes.host",
    "prometheus": "stackscope.probes.prometheus",
    "grpc": "stackscope.probes.grpc",
}

# The option keys, of any check type, whose value names the environment variable that
# holds a secret (EnvName, EnvHeaderMap), and those that name a secret file (SecretFile).
# The loader masks what they name before it validates anything, wherever they stand, so it
# needs them for every type: listed here so that a layout of http checks need not import
# the other probe modules (DNS, load-balancer parsers, psutil) to learn them.
# tests/unit/test_layout.py holds these lists to what the specs declare.
SECRET_ENV_KEYS: frozenset[str] = frozenset({"auth_env", "headers_env", "password_env", "secret_env"})
SECRET_FILE_KEYS: frozenset[str] = frozenset({"secret_file"})

_loaded: dict[str, CheckSpec] = {}


def spec_for(key: str) -> CheckSpec:
    """The spec of check type `key` (which must be in CHECK_TYPES)."""
    spec = _loaded.get(key)
    if spec is None:
        module = importlib.import_module(CHECK_TYPES[key])
        spec = module.SPEC
        if spec.key != key:
            raise RuntimeError(f"{CHECK_TYPES[key]}.SPEC has key {spec.key!r}, registered as {key!r}")
        _loaded[key] = spec
    return spec


def all_specs() -> list[CheckSpec]:
    return [spec_for(key) for key in CHECK_TYPES]
