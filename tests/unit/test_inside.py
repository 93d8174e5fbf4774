"""The parsers the platform checks use inside pods, on this machine's own /proc."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tests.support.inside import listeners, processes, reachable_from_other_pods


def _proc_net_tcp() -> str:
    return "".join(
        Path(f"/proc/net/{name}").read_text()
        for name in ("tcp", "tcp6")
        if Path(f"/proc/net/{name}").exists()
    )


def test_processes_reads_each_process_and_its_uids() -> None:
    status = Path("/proc/self/status").read_text() + Path("/proc/1/status").read_text()
    found = processes(status)
    assert len(found) == 2
    assert found[0].name == Path("/proc/self/comm").read_text().strip()
    assert found[0].uids == (os.getuid(), os.geteuid(), os.getuid(), os.geteuid())


def test_listeners_tell_loopback_from_every_interface() -> None:
    with socket.socket() as loopback, socket.socket() as everywhere:
        loopback.bind(("127.0.0.1", 0))
        loopback.listen()
        everywhere.bind(("0.0.0.0", 0))
        everywhere.listen()
        found = listeners(_proc_net_tcp())
        local_port = loopback.getsockname()[1]
        any_port = everywhere.getsockname()[1]
    assert found[local_port] == {"127.0.0.1"}
    assert not reachable_from_other_pods(found[local_port])
    assert found[any_port] == {"0.0.0.0"}
    assert reachable_from_other_pods(found[any_port])


def test_listeners_read_ipv6_sockets() -> None:
    with socket.socket(socket.AF_INET6) as server:
        server.bind(("::1", 0))
        server.listen()
        found = listeners(_proc_net_tcp())
        port = server.getsockname()[1]
    assert found[port] == {"::1"}
    assert not reachable_from_other_pods(found[port])


def test_a_connected_socket_is_not_a_listener() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            found = listeners(_proc_net_tcp())
            client_port = client.getsockname()[1]
    assert port in found
    assert client_port not in found
