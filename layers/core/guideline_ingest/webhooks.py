"""Webhook mechanics: which callback URLs are allowed, signing, and one delivery attempt.

SSRF: a callback must be https (plain http only to loopback, and only where the
ALLOW_LOOPBACK_CALLBACKS setting of a local runner allows it), and its host must
be globally routable (`ipaddress`' is_global, and no IPv6 form of an internal IPv4
address). The check runs on submission (literal addresses) and again on every
delivery, against the addresses the name resolves to then; the connection goes to
the address that was checked, so a DNS answer cannot change between the check and
the request.

Signature: `Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
with `Webhook-Timestamp` in Unix seconds; receivers recompute it and reject old
timestamps to stop replays. The secret is per API key, derived from one signing
secret, and readable by its owner at GET /webhooks/secret.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import os
import socket
import ssl
from urllib.parse import urlsplit

USER_AGENT = "guideline-ingest-webhooks/1"


class CallbackRefused(ValueError):
    """The URL may never be called (scheme, or an internal address)."""


class DeliveryFailed(Exception):
    """This attempt failed; a later one may succeed."""


def loopback_allowed() -> bool:
    return os.environ.get("ALLOW_LOOPBACK_CALLBACKS", "false").lower() == "true"


def check_callback_url(url: str) -> str:
    """For the request model: refuse what can be refused without a DNS lookup."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("callback_url must be an absolute https URL")
    host = parts.hostname
    if host == "localhost" or _is_loopback_literal(host):
        if not loopback_allowed():
            raise CallbackRefused("callback_url may not point at a loopback address")
        return url
    if parts.scheme != "https":
        raise CallbackRefused("callback_url must use https")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url
    _refuse_internal(address)
    return url


def signing_secret(master_secret: str, owner: str) -> str:
    return hmac.new(master_secret.encode(), owner.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST once to a checked address; returns the HTTP status. Raises CallbackRefused or DeliveryFailed."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _checked_address(parts.hostname, port)
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, port, address=address, timeout=timeout)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    try:
        connection.request("POST", path, body=body, headers={**headers, "User-Agent": USER_AGENT})
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    except (OSError, http.client.HTTPException) as error:
        raise DeliveryFailed(f"{type(error).__name__}: {error}") from error
    finally:
        connection.close()


def _checked_address(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise DeliveryFailed(f"cannot resolve {host}: {error}") from error
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if address.is_loopback and loopback_allowed():
            continue
        _refuse_internal(address)
    return str(addresses[0])


def _refuse_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Only globally routable unicast addresses: no private, shared (100.64/10), benchmarking,
    documentation, reserved or multicast range, and no IPv6 form that carries such an IPv4 address."""
    embedded = _embedded_ipv4(address)
    if (
        not address.is_global
        or address.is_multicast  # is_global says nothing about multicast
        or address in _LOCAL_NAT64
        or (embedded is not None and (not embedded.is_global or embedded.is_multicast))
    ):
        raise CallbackRefused(f"callback_url may not point at an internal address ({address})")


# IPv6 addresses that a router or NAT64 gateway turns into the IPv4 address inside them.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215; its IPv4 position varies
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.version == 4:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to the checked address, with the certificate verified for the URL's host name."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)
