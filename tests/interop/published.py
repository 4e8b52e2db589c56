"""An independent Hubble client: its own process, its message classes built from the
published facts alone (tests/interop/hubble_api_facts.tsv, through tests/interop/facts.py
into a descriptor pool of its own), never from Membrane's protos or generated package.
Nothing of the repository is on its path, so not one class of Membrane's is in it (both
define flow.Flow: one process could not hold the two in protobuf's default pool).

Why descriptors from facts rather than Membrane's .proto files restaged under Cilium's
layout: restaged files would be Membrane's own text, so a wrong number in them would be
wrong on both ends and the client would agree with it. The facts table was read from the
published files (its header cites them), and the client is built from nothing else.

    client = PublishedClient.build(tmp_path)
    client.run(target, "status") -> dict; "nodes" -> list; "flows" (a GetFlowsRequest in
    JSON) -> list of GetFlowsResponse dicts; "follow" (a request, count, seconds) -> list
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

CLIENT = r'''
import json, sys, time
import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf import field_mask_pb2, timestamp_pb2, wrappers_pb2
from facts import descriptors

pool = descriptor_pool.DescriptorPool()
for known in (timestamp_pb2, wrappers_pb2, field_mask_pb2):
    pool.AddSerializedFile(known.DESCRIPTOR.serialized_pb)
for file in descriptors():
    pool.Add(file)
message = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
service = pool.FindServiceByName("observer.Observer")


def method(name):
    m = service.methods_by_name[name]
    request, response = message(m.input_type.full_name), message(m.output_type.full_name)
    kind = channel.unary_stream if m.server_streaming else channel.unary_unary
    return request, kind(f"/{service.full_name}/{name}",
                         request_serializer=request.SerializeToString,
                         response_deserializer=response.FromString)


target, cmd = sys.argv[1], sys.argv[2]
channel = grpc.insecure_channel(target)
as_dict = lambda m: json_format.MessageToDict(m, preserving_proto_field_name=True)
unary = {"status": "ServerStatus", "nodes": "GetNodes", "namespaces": "GetNamespaces"}
if cmd in unary:
    request, call = method(unary[cmd])
    print(json.dumps(as_dict(call(request(), timeout=30))))
else:
    request_class, get_flows = method("GetFlows")
    request = json_format.Parse(sys.argv[3], request_class())
    count, seconds = int(sys.argv[4]), float(sys.argv[5])
    call = get_flows(request, timeout=seconds)
    out = []
    print("ready", file=sys.stderr, flush=True)
    try:
        for resp in call:
            out.append(as_dict(resp))
            if count and sum("flow" in r for r in out) >= count:
                break
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    call.cancel()
    print(json.dumps(out))
'''


@dataclass(frozen=True)
class PublishedClient:
    root: Path

    @classmethod
    def build(cls, tmp: Path) -> "PublishedClient":
        root = tmp / "published"
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "facts.py", root / "facts.py")
        shutil.copy(HERE / "hubble_api_facts.tsv", root / "hubble_api_facts.tsv")
        (root / "client.py").write_text(CLIENT)
        return cls(root)

    def _env(self) -> dict[str, str]:
        # Only the client and the facts: the repository is not on the path.
        return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                "PYTHONPATH": str(self.root)}

    def run(self, target: str, cmd: str, request: dict[str, Any] | None = None,
            count: int = 0, seconds: float = 20.0) -> Any:
        argv = [sys.executable, str(self.root / "client.py"), target, cmd]
        if request is not None:
            argv += [json.dumps(request), str(count), str(seconds)]
        done = subprocess.run(argv, capture_output=True, text=True, env=self._env(),
                              cwd=str(self.root), timeout=seconds + 30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def start_follow(self, target: str, request: dict[str, Any], count: int,
                     seconds: float) -> subprocess.Popen[str]:
        """A follower in the background; `finish(proc)` collects what it received."""
        argv = [sys.executable, str(self.root / "client.py"), target, "follow",
                json.dumps({**request, "follow": True}), str(count), str(seconds)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self._env(), cwd=str(self.root))
        assert proc.stderr is not None
        line = proc.stderr.readline()           # "ready": the call is made
        assert "ready" in line, line + proc.stderr.read()
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen[str], timeout: float = 60) -> list[dict[str, Any]]:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        result: list[dict[str, Any]] = json.loads(out)
        return result
