"""source_ip / destination_ip: an address or a CIDR; ip_version."""

from __future__ import annotations

import ipaddress

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(values: list[str]) -> list[Network]:
    nets = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"ip filter {v!r}: not an IP address or CIDR") from None
    return nets


def _matcher(nets: list[Network], side: str) -> FilterFunc:
    def match(flow: fpb.Flow) -> bool:
        text = getattr(flow.IP, side)
        if not text:
            return False
        addr = ipaddress.ip_address(text)
        return any(addr in n for n in nets)
    return match


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    if ff.source_ip:
        out.append(_matcher(_networks(list(ff.source_ip)), "source"))
    if ff.destination_ip:
        out.append(_matcher(_networks(list(ff.destination_ip)), "destination"))
    if ff.ip_version:
        versions = set(ff.ip_version)
        out.append(lambda flow: flow.IP.ipVersion in versions)
    return out
