"""A TCP proxy on loopback that can go half-open: `stall()` stops forwarding on every connection
it carries, in both directions, without closing any of them, as a middlebox that lost its state
or a peer that froze would. Connections made after a stall are forwarded normally, so a client
that gives up on a silent connection and reconnects gets through."""

from __future__ import annotations

import selectors
import socket
import threading

from tests.servers import free_port


class StallingProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        """Listens on `host` (loopback unless a test's own network namespace needs another address)
        and forwards to `target_port` on loopback."""
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener = socket.create_server((host, self.port))
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._stalled: set[socket.socket] = set()  # registered no more, never closed
        self._lock = threading.Lock()
        self._closing = False
        self.connections = 0
        self._thread = threading.Thread(target=self._run, name="stalling-proxy", daemon=True)
        self._thread.start()

    def stall(self) -> int:
        """Stop forwarding on every open connection; returns how many connections that froze."""
        with self._lock:
            for sock in list(self._pairs):
                self._selector.unregister(sock)
                self._stalled.add(sock)
            frozen = len(self._pairs) // 2
            self._pairs.clear()
            return frozen

    def close(self) -> None:
        self._closing = True
        self._thread.join(timeout=5)
        for sock in [self._listener, *self._pairs, *self._stalled]:
            sock.close()

    def _run(self) -> None:
        while not self._closing:
            for key, _ in self._selector.select(timeout=0.1):
                with self._lock:
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._listener:
                        self._accept()
                    elif sock in self._pairs:
                        self._forward(sock)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        self.connections += 1
        for sock in (client, server):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ)
        self._pairs[client], self._pairs[server] = server, client

    def _forward(self, sock: socket.socket) -> None:
        other = self._pairs[sock]
        try:
            data = sock.recv(65536)
            if data:
                other.setblocking(True)
                other.sendall(data)
                other.setblocking(False)
                return
        except OSError:
            pass
        for end in (sock, other):  # one side closed: close the pair, as a working proxy does
            self._selector.unregister(end)
            self._pairs.pop(end, None)
            end.close()
