"""Stock grpcio clients against a running daemon, with default channel options.

Usage: grpc_clients.py SOCKET PROTO_ROOT

Generates the `azr.sandbox.v1` stubs with grpcio-tools into a scratch directory, then
calls the daemon through a synchronous channel and a `grpc.aio` channel, both created
with nothing but `unix://SOCKET` (grpcio then sends the socket path as `:authority`).
Prints one JSON object: what each call returned, for the Rust test to check.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_tools import protoc


def stubs(proto_root: Path, out: Path) -> tuple[ModuleType, ModuleType]:
    """The generated message and service modules for azr/sandbox/v1/sandbox.proto."""
    code = protoc.main(
        [
            "protoc",
            f"-I{proto_root}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(proto_root / "azr/sandbox/v1/sandbox.proto"),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with status {code}")
    sys.path.insert(0, str(out))
    messages = importlib.import_module("azr.sandbox.v1.sandbox_pb2")
    services = importlib.import_module("azr.sandbox.v1.sandbox_pb2_grpc")
    return messages, services


def requests(pb: ModuleType) -> dict[str, Any]:
    program = pb.Program(source="def f(x):\n    print('hi')\n    return x * 2")
    return {
        "run": pb.RunRequest(task=pb.RunTask(program=program, input="21")),
        "check": pb.CheckRequest(
            task=pb.CheckTask(
                program=program,
                deduction=pb.Deduction(gold_output="42", answer="6 * 7"),
            )
        ),
        # A zero limit is a malformed request: the status code must survive the trip.
        "invalid": pb.RunRequest(
            task=pb.RunTask(program=program, input="1"),
            options=pb.Options(limits=pb.Limits(fuel=0)),
        ),
    }


def outcome(o: Any, pb: ModuleType) -> dict[str, Any]:
    return {
        "verdict": pb.Verdict.Name(o.verdict),
        "value": o.value if o.HasField("value") else None,
        "passed": o.passed if o.HasField("passed") else None,
        "stdout": o.stdout,
    }


def sync_calls(target: str, pb: ModuleType, svc: ModuleType) -> dict[str, Any]:
    reqs = requests(pb)
    with grpc.insecure_channel(target) as channel:
        stub = svc.SandboxStub(channel)
        health = stub.Health(pb.HealthRequest(), timeout=30)
        run = stub.Run(reqs["run"], timeout=60)
        check = stub.Check(reqs["check"], timeout=60)
        try:
            stub.Run(reqs["invalid"], timeout=60)
            invalid = "OK"
        except grpc.RpcError as e:
            invalid = e.code().name
    return {
        "health": health.status,
        "run": outcome(run, pb),
        "check": outcome(check, pb),
        "invalid": invalid,
    }


async def aio_calls(target: str, pb: ModuleType, svc: ModuleType) -> dict[str, Any]:
    reqs = requests(pb)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = svc.SandboxStub(channel)
        health = await stub.Health(pb.HealthRequest(), timeout=30)
        # Several calls in flight on one connection at once.
        run, check = await asyncio.gather(
            stub.Run(reqs["run"], timeout=60), stub.Check(reqs["check"], timeout=60)
        )
        try:
            await stub.Run(reqs["invalid"], timeout=60)
            invalid = "OK"
        except grpc.aio.AioRpcError as e:
            invalid = e.code().name
    return {
        "health": health.status,
        "run": outcome(run, pb),
        "check": outcome(check, pb),
        "invalid": invalid,
    }


def main() -> None:
    socket, proto_root = sys.argv[1], Path(sys.argv[2])
    target = f"unix://{socket}"
    with tempfile.TemporaryDirectory() as scratch:
        pb, svc = stubs(proto_root, Path(scratch))
        result = {
            "grpcio": grpc.__version__,
            "sync": sync_calls(target, pb, svc),
            "aio": asyncio.run(aio_calls(target, pb, svc)),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
