"""The L7 and tracing filters (http_status_code, http_method, http_path, http_url,
http_header, dns_query, trace_id) and source_ip_xlated: Membrane's flows are L3/L4,
never translated and carry no trace context, so each matches no flow, as Hubble's do
for such flows. Values are still checked (a bad regular expression is an error), so a
request is refused or accepted the same way Hubble would."""

from __future__ import annotations

import re

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb

_STATUS = re.compile(r"^[1-5][0-9]{0,2}\+?$")


def _never(flow: fpb.Flow) -> bool:
    return False


def _check(ff: fpb.FlowFilter) -> None:
    for code in ff.http_status_code:
        if not _STATUS.match(code):
            raise ValueError(f"http status code {code!r}: use a code or a prefix like "
                             "404, 4+ or 40+")
    for field in ("http_path", "http_url", "dns_query"):
        for pattern in getattr(ff, field):
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"{field} {pattern!r}: {err}") from None


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    _check(ff)
    if (ff.http_status_code or ff.http_method or ff.http_path or ff.http_url
            or ff.http_header or ff.dns_query or ff.trace_id or ff.source_ip_xlated):
        return [_never]
    return []
