"""A burst of concurrent requests from veRL's own SandboxFusion client against `serve --http`.

    python sandbox/python/bench/verl_burst.py URL CASES.jsonl [--requests 512] [--pid PID]

Every request is one HumanEval problem's canonical solution with its whole test
(`scripts/humaneval-cases.sh` makes CASES), sent by `call_sandbox_api` of the installed
`verl` package (`verl.utils.reward_score.sandbox_fusion.utils`, loaded without veRL's package
`__init__`, which pulls Ray and torch) with veRL's defaults: compile and run time-outs of
10 s, so a client-side deadline of 30 s, and up to 3 attempts, retrying only HTTP 504. All
requests start together (one thread each, released by a barrier), as a rollout's reward
workers do. Prints one JSON object: how every request ended, the 504s the client retried,
its client-side time-outs, latencies, and whether the daemon's PID (`--pid`) is the one it
started with.

Run it with the Python of `scripts/client-venv.sh` (it has `verl` and `requests`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any


def verl_utils() -> ModuleType:
    dist = importlib.metadata.distribution("verl")
    path = Path(str(dist.locate_file("verl/utils/reward_score/sandbox_fusion/utils.py")))
    spec = importlib.util.spec_from_file_location("verl_sandbox_fusion_utils", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Retries(logging.Handler):
    """Counts the client's own log lines about 504s (it retries those, and only those)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.gateway_timeouts = 0

    def emit(self, record: logging.LogRecord) -> None:
        # `Handler.handle` holds the handler's own lock around `emit`.
        if "Gateway Timeout (504)" in record.getMessage():
            self.gateway_timeouts += 1


def programs(cases: Path) -> list[str]:
    out = []
    with cases.open() as f:
        for line in f:
            case = json.loads(line)
            if case["variant"] == "canonical":
                out.append(f"{case['program']}\n\n{case['test']}\n\ncheck({case['entry_point']})\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", help="the daemon's /run_code URL")
    parser.add_argument("cases", type=Path)
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--pid", type=int, default=0, help="the daemon's PID, checked after")
    args = parser.parse_args()

    utils = verl_utils()
    retries = Retries()
    logging.getLogger(utils.__name__).addHandler(retries)
    logging.getLogger(utils.__name__).setLevel(logging.WARNING)
    pool = programs(args.cases)
    start_time = None
    if args.pid:
        start_time = Path(f"/proc/{args.pid}/stat").read_text().split()[21]

    barrier = threading.Barrier(args.requests)
    results: list[dict[str, Any]] = [{} for _ in range(args.requests)]

    def one(i: int) -> None:
        code = pool[i % len(pool)]
        barrier.wait()
        began = time.monotonic()
        response, error = utils.call_sandbox_api(args.url, code, None, 10, 10, 1024, "python")
        results[i] = {
            "seconds": time.monotonic() - began,
            "status": (response or {}).get("status"),
            "error": error,
        }

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.requests)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began

    errors = [r["error"] for r in results if r["error"]]
    latencies = sorted(r["seconds"] for r in results)
    same_daemon = None
    if args.pid:
        try:
            now = Path(f"/proc/{args.pid}/stat").read_text().split()[21]
            same_daemon = now == start_time
        except OSError:
            same_daemon = False
    print(
        json.dumps(
            {
                "requests": args.requests,
                "success": sum(r["status"] == "Success" for r in results),
                "failed": sum(r["status"] == "Failed" for r in results),
                "api_errors": len(errors),
                "client_timeouts": sum("timed out" in e.lower() for e in errors),
                "errors_sample": errors[:3],
                "retried_504": retries.gateway_timeouts,
                "latency_p50_s": round(statistics.median(latencies), 3),
                "latency_max_s": round(latencies[-1], 3),
                "wall_s": round(wall, 2),
                "client_deadline_s": 10 + 10 + utils.API_TIMEOUT,
                "same_daemon": same_daemon,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
