"""A real gRPC server (grpcio) with the standard health service, in a subprocess.

Run as a script it serves on 127.0.0.1: `grpc.health.v1.Health` from
grpcio-health-checking on the first port (server "" and service "app" SERVING), the
same server without any health service on the second port (UNIMPLEMENTED), and with a
certificate on an optional third port. The test switches a service's status at run
time with a control method on the first port, `/stackscope.test.Control/Set`, whose
request is `SERVICE=STATUS` in bytes: the call returns after the status is set, so the
next probe sees it (no polling, no sleeping).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .base import LOOPBACK, Process, free_port, port_open, wait_until

SCRIPT = Path(__file__)


class GrpcHealthServer:
    def __init__(self, workdir: Path, tls: tuple[str, str] | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.bare_port = free_port()  # no health service
        self.tls_port = free_port() if tls else None
        self.tls = tls
        self.process = Process("grpc", workdir)
        self._channel = None

    def start(self) -> GrpcHealthServer:
        argv = [sys.executable, "-m", "tests.servers.grpc_health", str(self.port), str(self.bare_port)]
        if self.tls:
            argv += [str(self.tls_port), *self.tls]
        self.process.spawn(argv, env={"PYTHONPATH": str(SCRIPT.parents[2])})
        for port in (self.port, self.bare_port, self.tls_port):
            if port:
                wait_until(lambda port=port: port_open(port), 15, f"grpc server on {port}", self.process.died)
        return self

    def set(self, service: str, status: str) -> None:
        """Set `service` ('' for the server) to SERVING / NOT_SERVING / …, and return once set."""
        import grpc

        if self._channel is None:
            self._channel = grpc.insecure_channel(f"{LOOPBACK}:{self.port}")
        call = self._channel.unary_unary("/stackscope.test.Control/Set")
        assert call(f"{service}={status}".encode(), timeout=10) == b"ok"

    def stop(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self.process.stop()


def _serve(port: int, bare_port: int, tls_port: int | None, cert: str | None, key: str | None) -> None:
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("app", health_pb2.HealthCheckResponse.SERVING)

    def control(request: bytes, context) -> bytes:
        service, _, status = request.decode().partition("=")
        servicer.set(service, health_pb2.HealthCheckResponse.ServingStatus.Value(status))
        return b"ok"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "stackscope.test.Control", {"Set": grpc.unary_unary_rpc_method_handler(control)}
            )
        ]
    )
    server.add_insecure_port(f"{LOOPBACK}:{port}")
    if tls_port and cert and key:
        credentials = grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])
        server.add_secure_port(f"{LOOPBACK}:{tls_port}", credentials)
    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    bare.add_insecure_port(f"{LOOPBACK}:{bare_port}")
    server.start()
    bare.start()
    server.wait_for_termination()


if __name__ == "__main__":
    args = sys.argv[1:]
    _serve(
        int(args[0]),
        int(args[1]),
        int(args[2]) if len(args) > 2 else None,
        args[3] if len(args) > 3 else None,
        args[4] if len(args) > 4 else None,
    )
