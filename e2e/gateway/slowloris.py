"""Slowloris clients for tests and benchmarks: many connections that trickle one header byte at a time and never
finish their request; one the server closes is opened again, so about `connections` stay open.

Run as a program it prints one JSON line of counts every second (and on SIGTERM/SIGINT a last one, then exits):

    python e2e/gateway/slowloris.py --port 8080 --connections 10000 --addresses 127.0.0.2-127.0.0.11

`--addresses` spreads the connections over several loopback source addresses (round robin), as clients on
several hosts would; the target must be on loopback. One thread with epoll keeps them all.
"""
from __future__ import annotations

import argparse
import errno
import heapq
import ipaddress
import json
import random
import resource
import selectors
import signal
import socket
import sys
import time

REQUEST_START = b"POST /v1/chat/completions HTTP/1.1\r\nHost: bakeoff\r\nContent-Type: application/json\r\n"
TRICKLE = b"X-Slow: " + b"a" * 4000 + b"\r\n"  # never ends the headers within a header limit of 32 KiB


def address_range(text: str) -> list[str]:
    """"127.0.0.2-127.0.0.9" or "127.0.0.2,127.0.0.5" as a list; only loopback addresses."""
    out: list[str] = []
    for part in text.split(","):
        if "-" in part:
            first, last = (ipaddress.IPv4Address(p.strip()) for p in part.split("-"))
            out += [str(ipaddress.IPv4Address(i)) for i in range(int(first), int(last) + 1)]
        else:
            out.append(str(ipaddress.IPv4Address(part.strip())))
    for a in out:
        if not ipaddress.IPv4Address(a).is_loopback:
            raise SystemExit(f"slowloris: {a} is not a loopback address")
    return out


class Slowloris:
    def __init__(self, host: str, port: int, connections: int, addresses: list[str], interval: float = 2.0,
                 connects_per_second: float = 5000.0):
        if not ipaddress.IPv4Address(host).is_loopback:
            raise SystemExit(f"slowloris: the target {host} is not a loopback address")
        self.host, self.port = host, port
        self.target = connections
        self.addresses = addresses
        self.interval = interval
        self.connects_per_second = connects_per_second
        self.selector = selectors.DefaultSelector()
        # socket -> [next send time, bytes sent]; the heap orders (next send time, serial, socket)
        self.sockets: dict[socket.socket, list] = {}
        self.due: list[tuple[float, int, socket.socket]] = []
        self._serial = 0
        self.opened = 0
        self.closed_by_server = 0
        self.connect_errors = 0
        self.bytes_sent = 0
        self._next_address = 0

    def _open_one(self) -> bool:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.addresses[self._next_address % len(self.addresses)], 0))
            self._next_address += 1
            s.setblocking(False)
            code = s.connect_ex((self.host, self.port))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, "connect")
        except OSError:
            s.close()
            self.connect_errors += 1
            return False
        self.sockets[s] = [time.monotonic() + random.uniform(0, self.interval), 0]
        self._schedule(s)
        self.selector.register(s, selectors.EVENT_READ)
        self.opened += 1
        return True

    def _schedule(self, s: socket.socket):
        self._serial += 1
        heapq.heappush(self.due, (self.sockets[s][0], self._serial, s))

    def _drop(self, s: socket.socket, by_server: bool):
        if s in self.sockets:
            del self.sockets[s]
            try:
                self.selector.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
            if by_server:
                self.closed_by_server += 1

    def _send(self, s: socket.socket, state: list):
        sent = state[1]
        data = REQUEST_START if sent == 0 else TRICKLE[(sent - len(REQUEST_START)) % len(TRICKLE):][:1]
        try:
            n = s.send(data)
        except BlockingIOError:
            n = 0  # still connecting, or the server's buffer is full: next time
        except OSError:
            self._drop(s, by_server=True)
            return
        state[1] += n
        self.bytes_sent += n
        state[0] = time.monotonic() + self.interval
        self._schedule(s)

    def stats(self) -> dict:
        return {"open": len(self.sockets), "opened": self.opened, "closed_by_server": self.closed_by_server,
                "connect_errors": self.connect_errors, "bytes_sent": self.bytes_sent}

    def step(self, budget_seconds: float = 0.05):
        """One round: replace closed connections (at a bounded rate), send due bytes, notice closes."""
        now = time.monotonic()
        missing = self.target - len(self.sockets)
        for _ in range(min(missing, max(1, int(self.connects_per_second * budget_seconds)))):
            if not self._open_one():
                break
        while self.due and self.due[0][0] <= now:
            _, _, s = heapq.heappop(self.due)
            state = self.sockets.get(s)
            if state is not None:
                self._send(s, state)
        for key, _ in self.selector.select(timeout=budget_seconds):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                self._drop(s, by_server=True)

    def close(self):
        for s in list(self.sockets):
            self._drop(s, by_server=False)
        self.selector.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--addresses", default="127.0.0.2-127.0.0.9")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between two bytes on a connection")
    parser.add_argument("--duration", type=float, default=600.0, help="stop after this many seconds at most")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loris = Slowloris(args.host, args.port, args.connections, address_range(args.addresses), args.interval)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    end = time.monotonic() + args.duration
    next_report = time.monotonic() + 1
    while not stopping and time.monotonic() < end:
        loris.step()
        if time.monotonic() >= next_report:
            print(json.dumps(loris.stats()), flush=True)
            next_report += 1
    print(json.dumps(loris.stats()), flush=True)
    loris.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
