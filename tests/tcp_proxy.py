"""A TCP proxy a test can cut: the database "goes away" for the code under test and comes back,
while the real server keeps running for everyone else. Two kinds of outage:

- ``cut``: connections reset and new ones refused (a crashed server's host);
- ``blackhole``: every socket stays open, new connections are accepted, and nothing is forwarded
  either way (a frozen primary, a partition behind a proxy that keeps acknowledging): reads on
  the client's side simply never complete.

``restore`` ends either (the blackholed connections are reset: their state is lost)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time

#: SO_LINGER on with a zero timeout: close() sends a reset, as a crashed server's host does
_RESET = struct.pack("ii", 1, 0)


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._holding = threading.Event()
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until ``restore``."""
        self._up.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                    sock.close()

    def blackhole(self) -> None:
        """Keep every socket open and forward nothing, until ``restore``."""
        self._holding.set()

    def restore(self) -> None:
        if self._holding.is_set():
            self.cut()  # what was held is lost, as after a partition's end
            with self._lock:
                held, self._held = self._held, []
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                    sock.close()
            self._holding.clear()
        self._up.set()

    def close(self) -> None:
        self._closing.set()
        self.restore()
        self.cut()
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closing.is_set():
            client, _ = self._listener.accept()
            if self._closing.is_set() or not self._up.is_set():
                client.close()
                continue
            if self._holding.is_set():  # accepted, never answered
                with self._lock:
                    self._held.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            thread = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            thread.start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            try:
                while True:
                    if self._holding.is_set():  # nothing moves: unread bytes stay buffered
                        time.sleep(0.05)
                        if client.fileno() < 0:
                            raise OSError("closed")
                        continue
                    for key, _ in selector.select(timeout=0.5):
                        if self._holding.is_set():
                            break
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            raise OSError("closed")
                        key.data.sendall(data)
            except (OSError, ValueError):
                pass
            finally:
                for sock in (client, upstream):
                    with contextlib.suppress(OSError):
                        sock.close()
