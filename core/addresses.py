"""Addresses as text: one way to write host:port for either IP family."""

from __future__ import annotations


def join_host_port(host: str, port: int | str) -> str:
    """host:port, an IPv6 address in brackets ([fd00::1]:4244), as Go's
    net.JoinHostPort writes it and as gRPC targets and Hubble's flow lines expect."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
