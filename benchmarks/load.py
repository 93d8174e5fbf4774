"""Closed-loop HTTP load on loopback: N clients, each with one keep-alive connection, sending
its next request as soon as the previous answer arrives (no think time), so the servers are
kept as busy as N users who wait for each answer can keep them.

The client is a minimal HTTP/1.1 writer and reader on asyncio streams, so its own cost per
request stays a small share of one core and does not take the servers' CPU; every answer's
status is checked and its body read in full.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Outcome:
    """What one level of load measured: per-request latency (ms), errors, the wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    seconds: float = 0.0
    first_error: str = ""

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantiles(self) -> tuple[float, float]:
        if not self.latencies:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(self.latencies, [50, 99])
        return float(p50), float(p99)


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"not an HTTP status line: {lines[0][:100]!r}")
        status = int(parts[1])
        fields = (line.partition(":") for line in lines[1:] if line)
        headers = {name.strip().lower(): value.strip() for name, _, value in fields}
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def closed_loop(
    host: str,
    port: int,
    path: str,
    bodies: list[bytes],
    clients: int,
    requests: int,
    timeout: float = 10.0,
) -> Outcome:
    """`requests` requests (bodies in turn) by `clients` concurrent clients."""
    outcome = Outcome()
    prepared = [request_bytes(host, port, path, body) for body in bodies]
    sent = 0

    async def client() -> None:
        nonlocal sent
        connection = Connection(host, port)
        while sent < requests:
            request = prepared[sent % len(prepared)]
            sent += 1
            started = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(connection.exchange(request), timeout)
            except TimeoutError:
                outcome.timeouts += 1
                connection.close()
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                outcome.errors += 1
                outcome.first_error = outcome.first_error or repr(error)
                connection.close()
                continue
            if status != 200:
                outcome.errors += 1
                outcome.first_error = outcome.first_error or f"{status}: {body[:200]!r}"
                continue
            outcome.latencies.append((time.perf_counter() - started) * 1e3)
        connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    outcome.seconds = time.perf_counter() - started
    return outcome
