"""The demo's DNS server: answers the service name over UDP and TCP (dnspython messages).

Faults: `wrong` hands out 127.0.0.2 (where nothing listens), `nxdomain` denies the name,
`silent` drops every query.
"""

from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

WRONG_ADDRESS = "127.0.0.2"
TTL = 5


class DemoDns:
    def __init__(self, zone: str, records: dict[str, str]) -> None:
        self.zone = zone.rstrip(".") + "."
        self.records = {name.rstrip(".") + ".": address for name, address in records.items()}
        self.mode = "ok"  # ok | wrong | nxdomain | silent
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        for _ in range(50):  # a port free for both UDP and TCP
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=("127.0.0.1", 0))
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, "127.0.0.1", port)
            except OSError:
                transport.close()
                continue
            self._udp, self.port = transport, port
            return port
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
            self._tcp = None

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        if self.mode == "silent" or not query.question:
            return None
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        if not name.endswith(self.zone):
            response.set_rcode(dns.rcode.REFUSED)
        elif self.mode == "nxdomain" or name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            response.flags |= dns.flags.AA
            if question.rdtype == dns.rdatatype.A:
                address = WRONG_ADDRESS if self.mode == "wrong" else self.records[name]
                response.answer.append(
                    dns.rrset.from_text(question.name, TTL, dns.rdataclass.IN, dns.rdatatype.A, address)
                )
        return response.to_wire()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 10))[0]
                reply = self.answer(await asyncio.wait_for(reader.readexactly(size), 10))
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.transport.abort()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DemoDns) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        reply = self.server.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)
