"""Connections that company admins configure (IMAP and SMTP hosts) reach the internet only:
not this server, its network or any other private range, unless OUTBOUND_ALLOW_PRIVATE is on
(development and tests, where Dovecot and the SMTP server listen on loopback). Otherwise an
admin could probe our own services through "Test connection"."""

import ipaddress
import socket

from django.conf import settings


class AddressNotAllowed(OSError):
    """The host names (or resolves to) a private, local or reserved address."""


def _private(address: str) -> bool:
    try:
        return not ipaddress.ip_address(address.split("%")[0]).is_global
    except ValueError:
        return False


def host_error(host: str) -> str | None:
    """On save: a private address or a local name written as the host (None: fine, or it is
    a name, which is checked when we connect)."""
    if settings.OUTBOUND_ALLOW_PRIVATE:
        return None
    name = host.strip().rstrip(".").lower()
    if _private(name) or name == "localhost" or name.endswith(".localhost"):
        return f"{host} is a private or local address; use the mail server's public name."
    return None


def connect(host: str, port: int, timeout: float | None) -> socket.socket:
    """socket.create_connection for a host an admin configured: the name is resolved once,
    every address it gives must be public, and the connection goes to one of those checked
    addresses — a name that resolves elsewhere a moment later (DNS rebinding) gets no second
    look-up. A name that does not resolve raises socket.gaierror, as create_connection does."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not settings.OUTBOUND_ALLOW_PRIVATE and any(_private(info[4][0]) for info in infos):
        raise AddressNotAllowed(f"{host} resolves to a private or local address.")
    error: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"{host} has no address to connect to")
