"""Who listens on a TCP port of this machine, from Linux's socket tables (/proc/net/tcp and /proc/net/tcp6).

On a shared login node any user may bind 127.0.0.1:8000 while your own server there is down; a plain-http
request would then hand them your API key. The owner of the listening socket tells the two apart.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SOCKET_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
TCP_LISTEN = "0A"  # the st column of a listening socket


def _table_address(text: str) -> IPAddress:
    """An address as the kernel prints it: hex, each 32-bit word in the host's byte order."""
    raw = bytes.fromhex(text)
    words = struct.unpack(f">{len(raw) // 4}I", raw)
    return ipaddress.ip_address(b"".join(struct.pack("=I", word) for word in words))


def _listening(table: str) -> Iterator[tuple[IPAddress, int, int]]:
    """(address, port, uid) of every listening socket in one table; a missing tcp6 table (no IPv6) is empty."""
    try:
        with open(table, encoding="ascii") as lines:
            next(lines)  # the column names
            rows = [line.split() for line in lines]
    except FileNotFoundError:
        if table == SOCKET_TABLES[0]:
            raise
        return
    for row in rows:
        if row[3] == TCP_LISTEN:
            address, port = row[1].split(":")
            yield _table_address(address), int(port, 16), int(row[7])


def _reaches(bound: IPAddress, target: IPAddress) -> bool:
    """Whether a socket bound to ``bound`` accepts connections to ``target`` (a wildcard :: also takes IPv4)."""
    if bound.is_unspecified:
        return bound.version == 6 or target.version == 4
    mapped = getattr(bound, "ipv4_mapped", None)
    return bound == target or (mapped is not None and mapped == target)


def listener_uids(host: str, port: int) -> set[int]:
    """The users owning the sockets a connection to host:port may reach (empty: nobody listens).

    OSError when this is not Linux (no socket tables) or host does not resolve."""
    targets = {
        ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    }
    return {
        uid
        for table in SOCKET_TABLES
        for address, bound_port, uid in _listening(table)
        if bound_port == port and any(_reaches(address, target) for target in targets)
    }
