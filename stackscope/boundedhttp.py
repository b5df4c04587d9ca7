"""The WSGI server of `stackscope export`: bounded threads, bounded time per connection.

The stdlib's ThreadingMixIn starts a thread per accepted connection and waits for its
request without a timeout, behind a listen backlog of 5: a client that connects and says
nothing holds a thread forever, and a few hundred of them make the process heavy and the
backlog makes a real scrape wait its turn. Here one thread accepts and reads every
connection's request head without blocking (a selector), and only a complete head goes to
one of WORKERS threads, which runs the WSGI app (wsgiref's handler, unchanged). So:

- an idle or slow client costs a socket and a small buffer, never a thread;
- every connection has REQUEST_TIMEOUT seconds from its accept to send a complete head
  (one byte a second does not extend it: the deadline is counted from the accept), and
  the same to take the answer; then it is closed;
- at most MAX_CONNECTIONS are held; one more evicts the oldest that has not finished its
  head, so a flood of idle connections cannot lock a scraper out;
- the listen backlog is the system's (SOMAXCONN), not 5.
"""

from __future__ import annotations

import io
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

REQUEST_TIMEOUT = 5.0  # seconds from accept to a complete request head, and to send the answer
WORKERS = 4  # threads that run the WSGI app; a scrape reads cached bytes, so a few suffice
MAX_CONNECTIONS = 256  # held at once (reading a head, queued or answering)
MAX_HEAD = 16 * 1024  # bytes of request line and headers; a scrape sends a few hundred
ACCEPTS_PER_WAKE = 64  # accepts per selector wake-up, so reading heads is never starved


class _Writer(io.BufferedIOBase):
    """The socket as the handler's wfile: every write is a sendall, so the socket's
    timeout bounds how long a client that does not read can hold a worker."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._sock.sendall(data)
        return len(data)


class _Quiet(io.StringIO):
    """Where wsgiref writes a traceback when a client goes away mid-answer: nowhere (a
    scraper that hangs up is not an error of the exporter, and the terminal stays clean)."""

    def write(self, text: str) -> int:
        return len(text)


class QuietHandler(WSGIRequestHandler):
    """wsgiref's handler, fed the request head the selector already read."""

    def __init__(self, request, client_address, server, head: bytes = b"") -> None:
        self.head = head
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(getattr(self.server, "timeout_seconds", REQUEST_TIMEOUT))
        self.rfile = io.BytesIO(self.head)
        self.wfile = _Writer(self.connection)

    def get_stderr(self):
        return _Quiet()

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # a scrape every few seconds must not fill the terminal or the journal


class _Pending:
    __slots__ = ("sock", "address", "deadline", "head")

    def __init__(self, sock: socket.socket, address, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.head = bytearray()


def _complete(head: bytearray) -> bool:
    return b"\r\n\r\n" in head or b"\n\n" in head


class BoundedWSGIServer(WSGIServer):
    """A WSGIServer (binds, listens, builds the WSGI environ) with its own serve loop."""

    allow_reuse_address = True
    request_queue_size = socket.SOMAXCONN
    timeout_seconds = REQUEST_TIMEOUT
    workers = WORKERS
    max_connections = MAX_CONNECTIONS

    def __init__(self, server_address, handler_class=QuietHandler, bind_and_activate: bool = True) -> None:
        super().__init__(server_address, handler_class, bind_and_activate)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()  # not serving yet
        self._wake_r, self._wake_w = socket.socketpair()
        self._lock = threading.Lock()
        self._in_flight = 0  # handed to a worker, not yet closed

    # -- the serve loop (one thread) ---------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()  # a shutdown() before this line still stops the loop: _stop stays set
        pending: dict[int, _Pending] = {}  # by file descriptor, in accept order
        selector = selectors.DefaultSelector()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="stackscope-export-http")
        try:
            self.socket.setblocking(False)
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                now = time.monotonic()
                wait = min([p.deadline for p in pending.values()], default=now + poll_interval) - now
                for key, _ in selector.select(max(0.0, min(wait, poll_interval))):
                    if key.fileobj is self.socket:
                        self._accept(selector, pending)
                    elif key.fileobj is self._wake_r:
                        self._wake_r.recv(64)
                    else:
                        self._read(key.fd, selector, pending, pool)
                now = time.monotonic()
                for fd in [fd for fd, p in pending.items() if p.deadline <= now]:
                    self._drop(fd, selector, pending)
        finally:
            for fd in list(pending):
                self._drop(fd, selector, pending)
            selector.close()
            pool.shutdown(wait=True)
            self._stopped.set()

    def _accept(self, selector: selectors.BaseSelector, pending: dict[int, _Pending]) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # out of descriptors, a connection reset before accept: try next wake-up
            with self._lock:
                held = len(pending) + self._in_flight
            if held >= self.max_connections:
                if pending:  # evict the oldest that has not sent its request
                    self._drop(next(iter(pending)), selector, pending)
                else:
                    sock.close()  # every slot is answering: this one must come back
                    continue
            sock.setblocking(False)
            pending[sock.fileno()] = _Pending(sock, address, time.monotonic() + self.timeout_seconds)
            selector.register(sock, selectors.EVENT_READ)

    def _read(
        self, fd: int, selector: selectors.BaseSelector, pending: dict[int, _Pending], pool: ThreadPoolExecutor
    ) -> None:
        entry = pending[fd]
        try:
            data = entry.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd, selector, pending)
            return
        entry.head += data
        if _complete(entry.head):
            selector.unregister(entry.sock)
            del pending[fd]
            with self._lock:
                self._in_flight += 1
            pool.submit(self._answer, entry)
        elif len(entry.head) > MAX_HEAD:
            try:
                entry.sock.send(b"HTTP/1.0 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self._drop(fd, selector, pending)

    @staticmethod
    def _drop(fd: int, selector: selectors.BaseSelector, pending: dict[int, _Pending]) -> None:
        entry = pending.pop(fd)
        selector.unregister(entry.sock)
        entry.sock.close()

    # -- a worker ------------------------------------------------------------------------

    def _answer(self, entry: _Pending) -> None:
        """Run wsgiref's handler on a complete head; the socket timeout (timeout_seconds,
        for the whole answer: sendall counts it from the start) cuts off a client that
        stops reading."""
        sock = entry.sock
        try:
            sock.setblocking(True)
            self.RequestHandlerClass(sock, entry.address, self, head=bytes(entry.head))  # type: ignore[call-arg, arg-type]
        except Exception:  # noqa: BLE001 - a client gone away, a timeout: never the exporter's end
            pass
        finally:
            self.shutdown_request(sock)
            with self._lock:
                self._in_flight -= 1

    # -- stopping ----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop serve_forever (from another thread) and wait until it has returned."""
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()


class BoundedWSGIServer6(BoundedWSGIServer):
    address_family = socket.AF_INET6
