"""Who is asking, and over what: the client's address and whether it came over HTTPS.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the reverse
proxies listed in ``FACETRACE_SERVICE__TRUSTED_PROXIES`` (none by default): from
anywhere else they are the client's own words, and a client that could name its own
address would escape the per-address rate limits and write forged addresses into the
audit log. ``facetrace serve`` runs uvicorn without its own proxy-header handling
(which trusts loopback by default), so this module is the only place that decides.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """The trusted proxies as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class Proxies:
    """The configured trusted proxies."""

    networks: tuple[Network, ...] = ()

    def trusts(self, host: str) -> bool:
        """True when ``host`` (the TCP peer, or a hop named in X-Forwarded-For) is one
        of the trusted proxies."""
        address = _address(host)
        return address is not None and any(address in n for n in self.networks)

    def client(self, request: Request) -> str:
        """The client's address: the TCP peer, unless the peer is a trusted proxy; then
        the last address in X-Forwarded-For that is not itself a trusted proxy (each
        proxy appends the address it was reached from, so what lies to the left of an
        untrusted hop may be forged)."""
        peer = request.client.host if request.client else "-"
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
        hops = [h for h in hops if h]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop if _address(hop) is not None else peer
        return hops[0] if hops else peer

    def https(self, request: Request) -> bool:
        """True when the client reached the service over HTTPS: the request's own scheme,
        or the X-Forwarded-Proto of a trusted proxy (the value it set, the last one)."""
        if request.url.scheme == "https":
            return True
        peer = request.client.host if request.client else "-"
        if not self.trusts(peer):
            return False
        proto = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        return proto == "https"


def client_address(request: Request) -> str:
    """The client address of a request (see :meth:`Proxies.client`), set by the app's
    middleware; the TCP peer when the middleware did not run."""
    value = getattr(request.state, "client_address", None)
    if isinstance(value, str):
        return value
    return request.client.host if request.client else "-"


def is_https(request: Request) -> bool:
    """True when the request came over HTTPS (see :meth:`Proxies.https`)."""
    return bool(getattr(request.state, "https", request.url.scheme == "https"))
