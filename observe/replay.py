"""Flows read back from JSON lines: an export file (observe.export), `membrane observe -o
json|jsonpb` output, or Hubble's own, answered like a GetFlows request.

Each line is a GetFlowsResponse or an ExportEvent in protobuf's JSON mapping (proto or
camelCase field names; both have `flow`, `node_name`, `time`); blank lines are skipped,
anything else is an error that names the line. The request's filters, since/until and
first/last apply as the server applies them (observe.stream); without first or last
every wanted flow is returned, in file order, as it is read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from google.protobuf import json_format

from core.errors import MembraneError
from observe.gen.observer import observer_pb2 as opb
from observe.stream import InvalidRequest, Window, check_request


def parse_lines(lines: Iterable[str], source: str = "input") -> Iterator[opb.GetFlowsResponse]:
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        try:
            yield json_format.Parse(text, opb.GetFlowsResponse(), ignore_unknown_fields=True)
        except json_format.ParseError as err:
            raise MembraneError(f"{source}:{number}: not a flow in JSON ({err})") from None


def _time_ns(resp: opb.GetFlowsResponse) -> int:
    if resp.HasField("time"):
        return resp.time.ToNanoseconds()
    return resp.flow.time.ToNanoseconds()


def replay(responses: Iterable[opb.GetFlowsResponse], request: opb.GetFlowsRequest
           ) -> Iterator[opb.GetFlowsResponse]:
    """The responses the request selects. Raises MembraneError for a request that
    cannot be answered (a bad filter)."""
    try:
        keep = check_request(request)
    except InvalidRequest as err:
        raise MembraneError(str(err)) from None
    window = Window(request)

    def wanted(resp: opb.GetFlowsResponse) -> bool:
        if not window.contains(_time_ns(resp)):
            return False
        return resp.WhichOneof("response_types") != "flow" or keep(resp.flow)

    selected = (r for r in responses if wanted(r))
    number = request.number
    if not number:
        yield from selected
        return
    if request.first:
        flows = 0
        for resp in selected:
            is_flow = resp.WhichOneof("response_types") == "flow"
            if is_flow and flows >= number:
                return
            flows += is_flow
            yield resp
        return
    # The last `number` flows and the notices among them.
    last: deque[opb.GetFlowsResponse] = deque()
    flows = 0
    for resp in selected:
        last.append(resp)
        if resp.WhichOneof("response_types") == "flow":
            flows += 1
            while flows > number:
                dropped = last.popleft()
                flows -= dropped.WhichOneof("response_types") == "flow"
    yield from last
