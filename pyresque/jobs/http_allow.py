"""The HTTP-callback job's allow-list (:mod:`.http_callback`): which URLs a worker may call.

Nothing is called unless ``PYRESQUE_HTTP_CALLBACK_HOSTS`` lists the host; a host that resolves to
a non-public address (private, loopback, link-local, reserved) is refused unless an entry names
it explicitly (the IP, a CIDR, or the exact host name; never a wildcard).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..exceptions import PyresqueError

HOSTS_ENV = "PYRESQUE_HTTP_CALLBACK_HOSTS"


class CallbackRefused(PyresqueError):
    """The job asks for something the allow-list or the argument rules forbid; never retried."""


class _Transient(Exception):
    """A connection error or a timeout: retried."""


# == the allow-list ===========================================================================
@dataclass
class AllowList:
    """``PYRESQUE_HTTP_CALLBACK_HOSTS``: comma-separated ``host``, ``host:port``, ``*.domain``,
    ``*`` (any public host), IP literals and CIDRs (``10.0.0.0/8``)."""

    patterns: list[tuple[str, int | None]] = field(default_factory=list)
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> AllowList:
        allow = cls()
        for entry in (e.strip().lower() for e in text.replace(" ", ",").split(",")):
            if not entry:
                continue
            try:
                allow.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host, port = entry, None
            if entry.count(":") == 1 or entry.startswith("["):  # host:port, [v6]:port
                head, _, tail = entry.rpartition(":")
                if tail.isdigit():
                    host, port = head, int(tail)
            allow.patterns.append((host.strip("[]"), port))
        return allow

    @classmethod
    def from_env(cls) -> AllowList | None:
        text = os.environ.get(HOSTS_ENV, "").strip()
        return cls.parse(text) if text else None

    def check(self, host: str, port: int, addresses: Iterable[str]) -> None:
        """Raise :class:`CallbackRefused` unless ``host:port``, resolved to ``addresses``, is allowed."""
        host = host.lower()
        literal = _ip(host)
        explicit = literal is not None and any(literal in net for net in self.networks)
        named = explicit
        for pattern, want_port in self.patterns:
            if want_port is not None and want_port != port:
                continue
            if pattern == host:
                named = explicit = True
            elif fnmatch.fnmatchcase(host, pattern):
                named = True
        if not named:
            raise CallbackRefused(f"host {host}:{port} is not in {HOSTS_ENV}")
        for address in addresses:
            ip = _ip(address)
            if ip is None or ip.is_global:
                continue
            if explicit or any(ip in net for net in self.networks):
                continue
            raise CallbackRefused(f"host {host} resolves to the non-public address {address}: list it "
                                  f"explicitly in {HOSTS_ENV} (the IP, a CIDR or the exact host name) to allow it")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused(f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused(f"bad port in URL: {url!r}") from None
    return parts.hostname, port


def _addresses(infos: Iterable[Any]) -> list[str]:
    return sorted({str(info[4][0]) for info in infos})


def check_url(allow: AllowList, url: str) -> None:
    """The allow-list's verdict on ``url``, resolving its host here (sync modes)."""
    host, port = _target(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _Transient(f"cannot resolve {host}: {exc}") from None
    allow.check(host, port, _addresses(infos))


async def check_url_async(allow: AllowList, url: str) -> None:
    import asyncio

    host, port = _target(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _Transient(f"cannot resolve {host}: {exc}") from None
    allow.check(host, port, _addresses(infos))
