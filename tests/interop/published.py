"""A client built from Cilium's published protos as they are (tests/interop/cilium-api),
never from Membrane's: compiled into a temporary directory and run as its own process,
so not one generated class of Membrane's is in it (both define flow.Flow: one process
cannot hold the two).

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

PUBLISHED = Path(__file__).resolve().parent / "cilium-api"
PROTOS = ("flow/flow.proto", "relay/relay.proto", "peer/peer.proto", "observer/observer.proto")

CLIENT = r'''
import json, sys, time
import grpc
from google.protobuf import json_format
from observer import observer_pb2 as opb, observer_pb2_grpc as opb_grpc

target, cmd = sys.argv[1], sys.argv[2]
stub = opb_grpc.ObserverStub(grpc.insecure_channel(target))
as_dict = lambda m: json_format.MessageToDict(m, preserving_proto_field_name=True)
if cmd == "status":
    print(json.dumps(as_dict(stub.ServerStatus(opb.ServerStatusRequest(), timeout=30))))
elif cmd == "nodes":
    print(json.dumps(as_dict(stub.GetNodes(opb.GetNodesRequest(), timeout=30))))
elif cmd == "namespaces":
    print(json.dumps(as_dict(stub.GetNamespaces(opb.GetNamespacesRequest(), timeout=30))))
else:
    request = json_format.Parse(sys.argv[3], opb.GetFlowsRequest())
    count, seconds = int(sys.argv[4]), float(sys.argv[5])
    call = stub.GetFlows(request, timeout=seconds)
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
        from grpc_tools import protoc
        import grpc_tools

        root = tmp / "published"
        for rel in PROTOS:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(PUBLISHED / rel, root / rel)
        include = Path(grpc_tools.__file__).parent / "_proto"
        args = ["protoc", f"-I{root}", f"-I{include}", f"--python_out={root}",
                f"--grpc_python_out={root}", *(str(root / r) for r in PROTOS)]
        assert protoc.main(args) == 0, "the published protos did not compile"
        (root / "client.py").write_text(CLIENT)
        return cls(root)

    def _env(self) -> dict[str, str]:
        # Only the generated published modules: the repository is not on the path.
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
