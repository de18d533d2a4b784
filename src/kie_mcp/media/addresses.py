"""Which URLs this machine may fetch for an agent's input or a link in KIE's answers (no SSRF).

kie-mcp fetches URLs itself in two places: measuring the length of an input a price bills by
(``duration.measure_url``) and saving results (``downloads.download``). Both URLs come from outside (the agent,
or KIE's status answers), so neither may make this machine reach what only it can reach: loopback, private,
link-local (169.254.169.254, the cloud metadata service), shared, reserved, multicast or unspecified addresses.
KIE fetches inputs from the internet, so it could never read such a URL either: refusing it costs nothing.

``check_url`` runs before the first request and before every redirect hop. It refuses IP literals (IPv4 in every
form the resolver reads, ``127.1``, ``0x7f.1``, ``2130706433``, ``017700000001``; IPv6, IPv4-mapped, 6to4 and
NAT64 forms of them), ``localhost`` and ``*.localhost``, and names that resolve (in a worker thread) to such an
address. The HTTP client that fetches results and measured inputs (``public_transport``) connects only where
``PublicOnly`` allows: it looks the name up once, refuses when an address is not public, and connects to exactly
the addresses it judged, so a name cannot resolve to a public address for the check and to this machine for the
connection (DNS rebinding): nothing is sent. ``check_peer`` then looks at the address the connection really
reached before anything of the answer is read: for any other transport the last line (there one request may have
been sent before a rebinding shows).

Exceptions: the configured KIE endpoints (``trust_endpoints``: ``kie-mcp sim --port`` serves result files from
127.0.0.1), and the in-process sandbox (``SandboxTransport`` never touches the network; no DNS lookup is made
for it). A transport that is neither httpx2's network transport nor the sandbox (a test's) gets the checks that
need no DNS.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# The benchmarking range, where proxies in "fake IP" mode (Clash, Surge, sing-box TUN) answer every name so that
# they can route it: refusing it would refuse every download behind such a proxy, and no service lives there.
_FAKE_IP = ipaddress.IPv4Network("198.18.0.0/15")
_TRUSTED: set[tuple[str, int | None]] = set()  # (host, port) of the configured KIE endpoints


class PrivateAddress(Exception):
    """``url`` points at this machine or a private network: it was not fetched (nothing was sent)."""

    def __init__(self, url: str, why: str, *, first: str | None = None) -> None:
        self.url = url
        self.why = why
        where = f"{first} redirects to {url}, which points" if first and first != url else f"{url} points"
        self.message = f"{where} at this machine or a private network ({why})"
        super().__init__(self.message)


def kie_cannot_reach(refused: PrivateAddress) -> str:
    """What to tell the caller about an input link to this machine or a private network: KIE cannot fetch it."""
    return (
        f"{refused.message}, which KIE cannot reach either; pass a public URL or a local file path (it will be "
        "uploaded)."
    )


# -- the configured KIE endpoints --------------------------------------------------------------------------


def _origin(url: httpx2.URL) -> tuple[str, int | None]:
    return _normal_host(url.host), url.port or _DEFAULT_PORTS.get(url.scheme)


def _normal_host(host: str) -> str:
    return host.lower().removesuffix(".").replace("%25", "%")


def trust_endpoints(*urls: str) -> None:
    """Let ``urls``' hosts (with their ports) be fetched unchecked: the KIE endpoints the user configured
    (``Settings.base_url``, ``upload_base_url``), which may be a simulator on 127.0.0.1."""
    for url in urls:
        try:
            _TRUSTED.add(_origin(httpx2.URL(url)))
        except Exception:  # a setting that is not a URL trusts nothing
            continue


def is_trusted(url: httpx2.URL) -> bool:
    return _origin(url) in _TRUSTED


# -- addresses ---------------------------------------------------------------------------------------------


# The most significant digits a part of an IPv4 literal can have (0xffffffff, 037777777777, 4294967295): a longer
# part is too large for any address, and Python refuses to read a decimal one of over 4300 digits (ValueError).
_MOST_DIGITS = 11


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 literal as ``inet_aton`` reads it: decimal, octal (leading 0) or hex (0x). None when it is
    none of these, or more than any address holds (a hostile link's 5000-digit host is a name, never an error)."""
    if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
        digits, base = part[2:].lstrip("0"), 16
    elif re.fullmatch(r"0[0-7]*", part):
        digits, base = part.lstrip("0"), 8
    elif re.fullmatch(r"[1-9][0-9]*", part):
        digits, base = part, 10
    else:
        return None
    return int(digits or "0", base) if len(digits) <= _MOST_DIGITS else None


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` means to the C resolver (1 to 4 parts, the last filling the remaining bytes)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    return ipaddress.IPv4Address(value << 8 * (4 - len(head)) | last)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` (a URL's host, without brackets) names when it is an IP literal, else None."""
    host = _normal_host(host)
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    return _inet_aton(host) if re.fullmatch(r"[0-9a-fx.]+", host) and host[0].isdigit() else None


def refusal(address: IPAddress) -> str | None:
    """Why this machine may not fetch from ``address`` (a short phrase), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (address.sixtofour if address.sixtofour else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:  # the IPv4 address it carries decides (DNS64 networks answer 64:ff9b::a.b.c.d)
            return refusal(embedded)
    if isinstance(address, ipaddress.IPv4Address) and address in _FAKE_IP:
        return None
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
    )
    for why, hit in checks:
        if hit:
            return f"a {why} address, {address}"
    return None if address.is_global else f"a non-public address, {address}"


# Names no public DNS answers: this machine (RFC 6761), the local network's mDNS (RFC 6762), home networks (RFC 8375)
# and private use (.internal); a name without a dot is a local network's too.
_LOCAL_NAMES = ("localhost", ".localhost", ".local", ".home.arpa", ".internal")


def unreachable_host(host: str) -> str | None:
    """Why KIE's servers cannot reach ``host`` (a URL's host, lower case), judged without a DNS lookup (how this
    machine resolves a name says little of how KIE does): an IP literal that is not public, or a local name; else
    None."""
    address = literal_address(host)
    if address is not None:
        return refusal(address)
    if host == "localhost" or host.endswith(".localhost"):
        return "localhost"
    if "." not in host or host.endswith(_LOCAL_NAMES):
        return "a local network's name"
    return None


async def _getaddrinfo(host: str, port: int | None) -> list[str]:
    infos = await anyio.to_thread.run_sync(
        socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM, abandon_on_cancel=True
    )
    return [str(info[4][0]) for info in infos]


# The resolver ``check_url`` asks (replaced in tests): every address ``host`` resolves to; OSError if none.
resolve_host: Callable[[str, int | None], Awaitable[list[str]]] = _getaddrinfo


class _NotPublic(Exception):
    """A host this machine may not fetch from; ``why`` says why (a short phrase)."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(why)


def _named_address(host: str) -> IPAddress | None:
    """The address ``host`` (normalised) names by itself (an IP literal), else None; ``_NotPublic`` for
    ``localhost`` and for a literal that is not public."""
    if host == "localhost" or host.endswith(".localhost"):
        raise _NotPublic("localhost")
    address = literal_address(host)
    if address is not None and (why := refusal(address)):
        raise _NotPublic(why)
    return address


async def _public_addresses(host: str, port: int | None) -> list[IPAddress]:
    """Every address the name ``host`` resolves to (OSError when none); ``_NotPublic`` when any is not public."""
    found: list[IPAddress] = []
    for text in await resolve_host(host, port):
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        if why := refusal(address):
            raise _NotPublic(f"{host} resolves to {why}")
        if address not in found:
            found.append(address)
    return found


# -- transports --------------------------------------------------------------------------------------------


def _transport(client: httpx2.AsyncClient, url: httpx2.URL) -> Any:
    find = getattr(client, "_transport_for_url", None)
    return find(url) if find is not None else getattr(client, "_transport", None)


def _in_process(transport: Any) -> bool:
    """The simulator's in-process transport: nothing it is given leaves the process."""
    module = sys.modules.get("kie_mcp.sandbox.transport")  # never loaded: no transport can be one
    return module is not None and isinstance(transport, module.SandboxTransport)


def _network(transport: Any) -> bool:
    return isinstance(transport, httpx2.AsyncHTTPTransport)


def _direct(transport: Any) -> bool:
    """httpx2's network transport without a proxy: the peer of its connections is the URL's host."""
    import httpcore2  # loaded by httpx2's network transport when it is built, not at start-up

    return _network(transport) and type(getattr(transport, "_pool", None)) is httpcore2.AsyncConnectionPool


# -- connecting where the check looked ------------------------------------------------------------------

TRY_SECONDS = 3.0  # an address that does not answer (an IPv6 route to nowhere) before the next one is tried


class PublicOnly:
    """The network backend of ``public_transport``'s connections (httpcore2's interface): it looks the name up
    itself, refuses (``_NotPublic``) when an address is not public, and connects to exactly the addresses it
    judged, in the resolver's order, so no second lookup can lead elsewhere. The configured KIE endpoints are
    connected to by name, unjudged."""

    def __init__(self, network: Any) -> None:
        self._network = network

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        import httpcore2

        options = {"port": port, "local_address": local_address, "socket_options": socket_options}
        name = _normal_host(host)
        if (name, port) in _TRUSTED:
            return await self._network.connect_tcp(host, timeout=timeout, **options)
        literal = _named_address(name)
        try:
            with anyio.fail_after(timeout):  # as a lookup inside the connect would be
                addresses = [literal] if literal is not None else await _public_addresses(name, port)
        except TimeoutError as err:
            raise httpcore2.ConnectTimeout(f"looking up {name} timed out") from err
        except OSError as err:
            raise httpcore2.ConnectError(f"{name}: {err}") from err
        if not addresses:
            raise httpcore2.ConnectError(f"{name} has no address")
        *others, last = addresses
        for address in others:
            try:
                wait = TRY_SECONDS if timeout is None else min(timeout, TRY_SECONDS)
                return await self._network.connect_tcp(str(address), timeout=wait, **options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout):
                continue
        return await self._network.connect_tcp(str(last), timeout=timeout, **options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        socket_options: Any = None,
    ) -> Any:
        return await self._network.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def public_transport(verify: Any = True, **options: Any) -> httpx2.AsyncHTTPTransport:
    """httpx2's network transport with its connections made by ``PublicOnly``: the transport of every fetch from
    this machine for a URL from outside. ``options``: the transport's others (its pool's ``limits``)."""
    transport = httpx2.AsyncHTTPTransport(verify=verify, **options)
    pool = transport._pool  # httpcore2's pool takes its backend only when built, and httpx2 builds it
    pool._network_backend = PublicOnly(pool._network_backend)
    return transport


def _pinned(transport: Any) -> bool:
    return isinstance(getattr(getattr(transport, "_pool", None), "_network_backend", None), PublicOnly)


# -- the checks --------------------------------------------------------------------------------------------


async def check_url(client: httpx2.AsyncClient, url: httpx2.URL | str, *, first: str | None = None) -> None:
    """Raise ``PrivateAddress`` unless ``client`` may fetch ``url`` from this machine (see the module's doc);
    ``first`` is the URL whose redirect led here, for the message."""
    url = httpx2.URL(url)
    if url.scheme not in _DEFAULT_PORTS:  # the transports refuse every other scheme
        return
    if is_trusted(url) or _in_process(transport := _transport(client, url)):
        return

    def refused(why: str) -> PrivateAddress:
        return PrivateAddress(str(url), why, first=first)

    host = _normal_host(url.host)
    if not host:
        raise refused("no host")
    try:
        if _named_address(host) is not None:
            return
        if not _network(transport) or _pinned(transport):  # a test's transport decides itself where a request
            return  # goes; the pinned one judges what it resolves when it connects: one lookup, no DNS from here
        await _public_addresses(host, url.port or _DEFAULT_PORTS.get(url.scheme))
    except _NotPublic as err:
        raise refused(err.why) from None
    except OSError:  # not resolved here: the request fails the same way (or a proxy resolves it)
        return


def check_peer(
    client: httpx2.AsyncClient, url: httpx2.URL, response: httpx2.Response, *, first: str | None = None
) -> None:
    """Raise ``PrivateAddress`` when the connection that answered ``url`` reached a non-public address (the name
    resolved to another address when connecting than when checked). Read nothing of ``response`` before."""
    if is_trusted(url) or not _direct(_transport(client, url)):
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if not isinstance(peer, tuple) or not peer:
        return
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return
    if why := refusal(address):
        raise PrivateAddress(str(url), f"the connection reached {why}", first=first)


async def send_checked(client: httpx2.AsyncClient, request: httpx2.Request, *, first: str) -> httpx2.Response:
    """One hop of a fetch from this machine, streamed, redirects not followed: its URL checked before it is
    requested (``check_url``), the address connected to when connecting (``PublicOnly``, on the transport of
    ``public_transport``), the connection's peer before anything of the answer is read (``check_peer``).
    ``first`` is the URL the fetch began with, for the message."""
    await check_url(client, request.url, first=first)
    try:
        response = await client.send(request, stream=True, follow_redirects=False)
    except _NotPublic as err:  # refused by ``PublicOnly`` when connecting: nothing was sent
        raise PrivateAddress(str(request.url), err.why, first=first) from None
    try:
        check_peer(client, request.url, response, first=first)
    except BaseException:
        await response.aclose()
        raise
    return response
