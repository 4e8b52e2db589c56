"""IP addresses and CIDRs as the API server reads them.

The legacy fields Membrane reads (ipBlock.cidr and except, Node podCIDR, Pod podIP) are
validated upstream with `IsValidCIDRForLegacyField` / `IsValidIPForLegacyField`
(k8s.io/apimachinery/pkg/util/validation/ip.go), which, while the StrictIPCIDRValidation
feature gate is off (the default), parse with k8s.io/utils/net's `ParseCIDRSloppy` /
`ParseIPSloppy`: Go 1.16's parser, which
  * reads IPv4 octets with leading zeros as decimal ("010.0.0.1" is 10.0.0.1),
  * accepts host bits after the prefix length (and clears them),
  * accepts a prefix length with leading zeros ("/08"),
  * treats an IPv4-mapped IPv6 value ("::ffff:10.0.0.0/104") as the IPv4 one
    (10.0.0.0/8): net.IPNet.Contains and String() work on its 4-byte form,
  * refuses a netmask instead of a length ("/255.0.0.0") and zones ("fe80::1%eth0"),
    which Python's ipaddress would accept.
What Python would refuse and Go accepts is accepted here, with the warnings
`GetWarningsForCIDR` / `GetWarningsForIP` give for those forms; what Go refuses is
refused.
"""

from __future__ import annotations

import ipaddress
import re

from agent.k8s.validation.fields import Field, quoted

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_DOTTED = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)")
_DIGITS = re.compile(r"[0-9]+")
_MAPPED_PREFIX = 96   # ::ffff:0:0/96 holds the IPv4-mapped addresses


def _sloppy_ipv4(text: str) -> tuple[ipaddress.IPv4Address, bool] | None:
    """Go 1.16 parseIPv4: four decimal octets, leading zeros allowed (and ignored).
    (address, whether it had leading zeros), or None."""
    match = _DOTTED.fullmatch(text)
    if match is None:
        return None
    octets = [int(group) for group in match.groups()]
    if any(octet > 255 for octet in octets):
        return None
    leading_zeros = any(len(group) > 1 and group[0] == "0" for group in match.groups())
    return ipaddress.IPv4Address(bytes(octets)), leading_zeros


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    if "%" in text or ":" not in text:   # Go's parser knows no zones
        return None
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def parse_ip(field: Field) -> Address:
    """IsValidIPForLegacyField: an IPv4 or IPv6 address, read as ParseIPSloppy does (an
    IPv4-mapped IPv6 address is the IPv4 one). Non-standard forms are warned about."""
    text = field.required_string()
    v4 = _sloppy_ipv4(text)
    if v4 is not None:
        address, leading_zeros = v4
        if leading_zeros:
            _warn_non_standard(field, "IP address", text, str(address))
        return address
    v6 = _ipv6(text)
    if v6 is None:
        field.fail(f"invalid value {quoted(text)}: must be a valid IP address, "
                   "(e.g. 10.9.8.7 or 2001:db8::ffff)")
    if v6.ipv4_mapped is not None:
        _warn_non_standard(field, "IP address", text, str(v6.ipv4_mapped))
        return v6.ipv4_mapped
    if str(v6) != text:
        field.warn(f"IPv6 address {quoted(text)} should be in RFC 5952 canonical format "
                   f"({quoted(str(v6))})")
    return v6


def parse_cidr(field: Field) -> Network:
    """IsValidCIDRForLegacyField: a CIDR, read as ParseCIDRSloppy does, host bits
    cleared. A bare address is not a CIDR."""
    text = field.required_string()
    address_text, slash, length_text = text.partition("/")
    if not slash:
        field.fail(f"invalid CIDR {quoted(text)}: must have a prefix length, e.g. {text}/32")
    invalid = (f"invalid CIDR {quoted(text)}: must be a valid CIDR value, "
               "(e.g. 10.9.8.0/24 or 2001:db8::/64)")
    v4 = _sloppy_ipv4(address_text)
    address: Address | None
    if v4 is not None:
        address, non_standard = v4
    else:
        address, non_standard = _ipv6(address_text), False
    if address is None or not _DIGITS.fullmatch(length_text):
        field.fail(invalid)
    length = int(length_text)
    if length > address.max_prefixlen:
        field.fail(invalid)
    non_standard |= len(length_text) > 1 and length_text[0] == "0"
    network: Network = ipaddress.ip_network((address, length), strict=False)
    if network.network_address != address:
        single = f"{_unmapped(address)}/{_unmapped(address).max_prefixlen}"
        field.warn(f"CIDR value {quoted(text)} is ambiguous in this context (should be "
                   f"{quoted(str(_as_ipv4(network)))} or {quoted(single)}?); read as the "
                   "former, as the API server does")
    mapped = _as_ipv4(network)
    if mapped != network:
        network, non_standard = mapped, True
    if non_standard:
        _warn_non_standard(field, "CIDR value", text, str(network))
    elif network.version == 6 and network.network_address == address and str(network) != text:
        field.warn(f"IPv6 CIDR value {quoted(text)} should be in RFC 5952 canonical format "
                   f"({quoted(str(network))})")
    return network


def _as_ipv4(network: Network) -> Network:
    """An IPv4-mapped IPv6 network as the IPv4 network Go's net.IPNet makes of it."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= _MAPPED_PREFIX:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED_PREFIX))
    return network


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _warn_non_standard(field: Field, what: str, text: str, standard: str) -> None:
    # GetWarningsForCIDR / GetWarningsForIP word it so.
    field.warn(f"non-standard {what} {quoted(text)} will be considered invalid in a future "
               f"Kubernetes release: use {quoted(standard)}")


def is_strict_subnet(inner: Network, outer: Network) -> bool:
    """ValidateIPBlock's except rule: outer contains inner's address and has the shorter
    prefix (different families never contain each other)."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.prefixlen > outer.prefixlen and inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.prefixlen > outer.prefixlen and inner.subnet_of(outer)
    return False
