"""What the platform checks read inside a pod (/proc) and over HTTP, parsed."""

from __future__ import annotations

import base64
import ipaddress
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

# /proc/net/tcp's state of a listening socket.
LISTEN = "0A"


@dataclass(frozen=True)
class Process:
    name: str
    # Real, effective, saved and filesystem UIDs.
    uids: tuple[int, ...]


def processes(status_files: str) -> list[Process]:
    """The processes in the concatenated /proc/<pid>/status files of a container."""
    found: list[Process] = []
    name = ""
    for line in status_files.splitlines():
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Uid":
            found.append(Process(name, tuple(int(u) for u in value.split())))
    return found


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listeners(proc_net_tcp: str) -> dict[int, set[str]]:
    """Listening TCP ports and the addresses each is bound to, from /proc/net/tcp and tcp6."""
    found: dict[int, set[str]] = {}
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != LISTEN or ":" not in fields[1]:
            continue
        address, port = fields[1].split(":")
        found.setdefault(int(port, 16), set()).add(str(_address(address)))
    return found


def reachable_from_other_pods(addresses: set[str]) -> bool:
    """Whether a socket bound to these addresses takes connections that are not loopback."""
    return any(not ipaddress.ip_address(a).is_loopback for a in addresses)


@dataclass(frozen=True)
class Response:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, user: str | None = None, password: str | None = None) -> Response:
    """A GET, with basic auth when a user is given; HTTP errors are responses too."""
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Response(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read().decode(errors="replace"))
