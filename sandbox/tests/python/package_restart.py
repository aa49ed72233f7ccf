"""One `azr_sandbox` client, sync and async, across a daemon restart on the same socket.

    package_restart.py AZR_SANDBOX_BINARY DIR

Starts the daemon, calls it, stops it, checks that a call while it is down fails clearly,
starts it again, and calls it with the same client objects. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from azr_sandbox import AsyncSandbox, RetryPolicy, Sandbox, SandboxUnavailable, StdioCase

CASE = [StdioCase("2\n", "4")]
PROGRAM = "print(int(input()) * 2)"


def start(binary: str, socket: str, log: Any) -> subprocess.Popen[bytes]:
    daemon = subprocess.Popen(
        [binary, "--workers", "1", "serve", "--socket", socket], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    while not os.path.exists(socket):
        if time.monotonic() > deadline or daemon.poll() is not None:
            raise RuntimeError("the daemon did not start")
        time.sleep(0.05)
    return daemon


def stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.terminate()
    daemon.wait(timeout=60)


def main() -> None:
    binary, directory = sys.argv[1], sys.argv[2]
    socket = os.path.join(directory, "sandbox.sock")
    quick = RetryPolicy(attempts=3, backoff=0.01)
    sync, aio = Sandbox(socket, retry=quick), AsyncSandbox(socket, retry=quick)
    patient = Sandbox(socket, retry=RetryPolicy(attempts=200, backoff=0.05, max_backoff=0.5))
    loop = asyncio.new_event_loop()
    result: dict[str, Any] = {}
    with open(os.path.join(directory, "daemon.log"), "ab") as log:
        daemon = start(binary, socket, log)
        result["before"] = [
            patient.test(PROGRAM, CASE)[0].passed,
            loop.run_until_complete(aio.test(PROGRAM, CASE))[0].passed,
        ]
        stop(daemon)
        try:
            sync.test(PROGRAM, CASE)
            result["down"] = "answered"
        except SandboxUnavailable as e:
            result["down"] = e.code
        daemon = start(binary, socket, log)
        try:
            result["after"] = [
                patient.test(PROGRAM, CASE)[0].passed,
                sync.test(PROGRAM, CASE)[0].passed,
                loop.run_until_complete(aio.test(PROGRAM, CASE))[0].passed,
            ]
        finally:
            stop(daemon)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
