"""The demo's load balancer: round robin over the members its health checks call UP.

It behaves like HAProxy where stackscope looks: servers go DOWN after `fall` failed checks
and UP after `rise` good ones (showing "UP 1/2", "DOWN 1/2" on the way), no server UP
means 503 "No server is available to handle this request.", and the pool is published as
an HAProxy-format stats CSV (with addresses, as with `stats show-legends`), so the real
`haproxy` check reads it unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from stackscope.demo.httpserver import HttpServer, Request, Response
from stackscope.demo.listener import cancel_and_wait
from stackscope.probes.common import Deadline, ProbeFailure
from stackscope.probes.httpclient import fetch

CHECK_INTERVAL = 0.5
CHECK_TIMEOUT = 1.0
RISE = FALL = 2
PROXY_TIMEOUT = 3.0

CSV_FIELDS = (
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,"
    "status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,"
    "type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,"
    "hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,"
    "comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,"
    "agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,"
    "agent_fall,agent_health,addr,cookie,mode,algo"
).split(",")


@dataclass
class Member:
    name: str
    port: int
    up: bool = True  # HAProxy starts servers UP and lets the checks decide
    health: int = RISE  # consecutive good checks while UP (counts down on failures)
    streak: int = 0  # consecutive good checks while DOWN
    check_status: str = "INI"
    check_code: str = ""
    last_chk: str = ""
    changed_at: float = field(default_factory=time.monotonic)
    sessions: int = 0
    total: int = 0
    econ: int = 0
    eresp: int = 0
    hrsp: dict[str, int] = field(default_factory=lambda: {k: 0 for k in ("1xx", "2xx", "3xx", "4xx", "5xx")})

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def status(self) -> str:
        if self.up:
            return "UP" if self.health >= FALL else f"UP {self.health}/{FALL}"
        return "DOWN" if self.streak == 0 else f"DOWN {self.streak}/{RISE}"


class DemoLb:
    def __init__(self, pool_name: str, members: list[tuple[str, int]]) -> None:
        self.pool_name = pool_name
        self.members = [Member(name, port) for name, port in members]
        self.health_path = "/health"
        self.frontend = HttpServer(self.proxy)
        self.stats = HttpServer(self.stats_page)
        self._rr = itertools.count()
        self._checker: asyncio.Task | None = None
        self.frontend_total = 0
        self.frontend_5xx = 0

    async def start(self) -> None:
        await self.frontend.start()
        await self.stats.start()
        self._checker = asyncio.create_task(self._check_forever(), name="demo-lb-checks")

    async def stop(self) -> None:
        await cancel_and_wait(self._checker)
        self._checker = None
        await self.frontend.stop()
        await self.stats.stop()

    def set_members(self, members: list[tuple[str, int]]) -> None:
        """A config change: the pool now holds these servers (they start UP, as after a reload)."""
        self.members = [Member(name, port) for name, port in members]

    # ------------------------------------------------------------------ health checks
    async def _check_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._check(member) for member in list(self.members)))
            await asyncio.sleep(CHECK_INTERVAL)

    async def _check(self, member: Member) -> None:
        try:
            response = await fetch(
                "127.0.0.1",
                member.port,
                deadline=Deadline(CHECK_TIMEOUT),
                target=self.health_path,
                host_header=member.address,
                body_cap=1024,
            )
            good = 200 <= response.status < 400
            member.check_status, member.check_code = ("L7OK" if good else "L7STS"), str(response.status)
            member.last_chk = "" if good else response.reason
        except ProbeFailure as failure:
            good = False
            layer4 = failure.kind.value in ("refused", "unreachable")
            member.check_status = "L4CON" if layer4 else "L4TOUT" if failure.kind.value == "timeout" else "L7RSP"
            member.check_code, member.last_chk = "", failure.detail
        if member.up:
            member.health = min(FALL, member.health + 1) if good else member.health - 1
            if member.health <= 0:
                member.up, member.streak, member.changed_at = False, 0, time.monotonic()
        else:
            member.streak = member.streak + 1 if good else 0
            if member.streak >= RISE:
                member.up, member.health, member.changed_at = True, FALL, time.monotonic()

    # ------------------------------------------------------------------ traffic
    async def proxy(self, request: Request) -> Response:
        self.frontend_total += 1
        live = [m for m in self.members if m.up]
        if not live:
            self.frontend_5xx += 1
            return Response(
                503,
                b"<html><body><h1>503 Service Unavailable</h1>\nNo server is available to "
                b"handle this request.\n</body></html>\n",
                content_type="text/html",
            )
        member = live[next(self._rr) % len(live)]
        member.sessions += 1
        member.total += 1
        try:
            response = await fetch(
                "127.0.0.1",
                member.port,
                deadline=Deadline(PROXY_TIMEOUT),
                method=request.method,
                target=request.target,
                host_header=request.headers.get("host", member.address),
                body_cap=64 * 1024,
            )
        except ProbeFailure as failure:
            if failure.kind.value in ("refused", "unreachable"):
                member.econ += 1
            else:
                member.eresp += 1
            self.frontend_5xx += 1
            status = 504 if failure.kind.value == "timeout" else 502
            return Response(
                status,
                f"<html><body><h1>{status}</h1>\nThe server returned an invalid or "
                f"incomplete response.\n</body></html>\n".encode(),
                content_type="text/html",
            )
        finally:
            member.sessions -= 1
        member.hrsp[f"{response.status // 100}xx"] = member.hrsp.get(f"{response.status // 100}xx", 0) + 1
        if response.status >= 500:
            self.frontend_5xx += 1
        headers = {}
        served_by = response.header("x-served-by")
        if served_by:
            headers["X-Served-By"] = served_by
        return Response(response.status, response.body, headers, response.header("content-type") or "text/plain")

    # ------------------------------------------------------------------ stats
    async def stats_page(self, request: Request) -> Response:
        if request.path.endswith(";csv"):
            return Response(200, self.csv().encode())
        return Response(200, b"<html><body>demo LB: add ;csv to the URL</body></html>\n", content_type="text/html")

    def csv(self) -> str:
        now = time.monotonic()
        rows = [
            self._row(
                svname="FRONTEND",
                status="OPEN",
                type="0",
                stot=self.frontend_total,
                hrsp_5xx=self.frontend_5xx,
                pxname="web",
            )
        ]
        for index, member in enumerate(self.members, 1):
            rows.append(
                self._row(
                    pxname=self.pool_name,
                    svname=member.name,
                    status=member.status,
                    weight=1,
                    act=1,
                    bck=0,
                    type="2",
                    scur=member.sessions,
                    stot=member.total,
                    econ=member.econ,
                    eresp=member.eresp,
                    lastchg=int(now - member.changed_at),
                    check_status=member.check_status,
                    check_code=member.check_code,
                    last_chk=member.last_chk,
                    addr=member.address,
                    sid=index,
                    check_rise=RISE,
                    check_fall=FALL,
                    **{f"hrsp_{k}": v for k, v in member.hrsp.items()},
                )
            )
        live = sum(m.up for m in self.members)
        rows.append(
            self._row(
                pxname=self.pool_name,
                svname="BACKEND",
                status="UP" if live else "DOWN",
                weight=live,
                act=live,
                type="1",
                stot=sum(m.total for m in self.members),
                algo="roundrobin",
            )
        )
        return "# " + ",".join(CSV_FIELDS) + ",\n" + "".join(rows)

    @staticmethod
    def _row(**values) -> str:
        return ",".join(str(values.get(name, "")).replace(",", ";") for name in CSV_FIELDS) + ",\n"
