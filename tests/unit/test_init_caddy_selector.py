"""`stackscope init` from a Caddy config: the caddy check it writes names each pool the way
the check selects a reverse_proxy (by @id, host/path, path or host; caddy_conf.select), never
by a name the check does not know (a Caddyfile's JSON has no @id, only server keys)."""

from __future__ import annotations

import json

from stackscope.discover.lbconfig import Options, caddy
from stackscope.lb import caddy_conf


def _proxy(dial: str, **route) -> dict:
    return {**route, "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": dial}]}]}


CONFIG = {
    "apps": {
        "http": {
            "servers": {
                "srv0": {
                    "listen": ["127.0.0.1:8080"],
                    "routes": [
                        _proxy("127.0.0.1:9001", match=[{"host": ["auth.example.test"]}]),
                        {
                            "match": [{"host": ["api.example.test"]}],
                            "handle": [
                                {
                                    "handler": "subroute",
                                    "routes": [
                                        _proxy("127.0.0.1:9002", match=[{"path": ["/v1/*"]}]),
                                        _proxy("127.0.0.1:9003"),
                                    ],
                                }
                            ],
                        },
                        _proxy("127.0.0.1:9004", **{"@id": "billing", "match": [{"path": ["/billing/*"]}]}),
                    ],
                }
            }
        }
    }
}


def test_each_pool_gets_the_selector_that_picks_it_alone(tmp_path):
    path = tmp_path / "caddy.json"
    path.write_text(json.dumps(CONFIG))
    found = caddy(str(path), Options())
    proxies = caddy_conf.load(str(path)).proxies
    selectors = [pool.selector for pool in found.pools]
    # a host; host/path; nothing picks the api host's catch-all alone; the @id
    assert selectors == ["auth.example.test", "api.example.test/v1/*", "", "@billing"]
    for pool, proxy in zip(found.pools, proxies):
        if pool.selector:
            assert caddy_conf.select(list(proxies), pool.selector, set(), {})[0] == proxy


def test_a_lone_handler_without_id_leaves_the_check_to_choose(tmp_path):
    """The Caddyfile case: one server `srv0`, no @id, no matcher. `upstream: '@srv0'` would
    match nothing; with no upstream the check takes the only reverse_proxy."""
    path = tmp_path / "caddy.json"
    path.write_text(
        json.dumps(
            {"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": [_proxy("127.0.0.1:9001")]}}}}}
        )
    )
    found = caddy(str(path), Options())
    assert [(pool.name, pool.selector) for pool in found.pools] == [("srv0", "")]
