"""One round of the test-case benchmark through the Python package's veRL reward function
(`azr_sandbox.verl.compute_score`), for `azr-sandbox bench test-cases --reward-python`.

    reward_bench.py SOCKET CASES.jsonl IN_FLIGHT

Each completion is one `compute_score` call (its assert cases in one batch, as the gRPC
path sends them), IN_FLIGHT at a time on one event loop; prints one JSON line with the time
taken, per-completion latencies and verdicts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from azr_sandbox.verl import compute_score


async def main(socket: str, completions: list[dict[str, Any]], in_flight: int) -> dict[str, Any]:
    semaphore = asyncio.Semaphore(in_flight)

    async def one(c: dict[str, Any]) -> tuple[float, bool]:
        truth = {"assert_case": c["cases"]}
        text = f"```python\n{c['program']}\n```"
        async with semaphore:
            started = time.perf_counter()
            result = await compute_score(
                data_source="humaneval",
                solution_str=text,
                ground_truth=truth,
                extra_info={},
                sandbox_socket=socket,
            )
            return time.perf_counter() - started, result["score"] == 1.0

    started = time.perf_counter()
    results = await asyncio.gather(*(one(c) for c in completions))
    seconds = time.perf_counter() - started
    return {
        "completions": len(completions),
        "seconds": seconds,
        "latencies": [r[0] for r in results],
        "passed": [r[1] for r in results],
        "canonical": [c["variant"] == "canonical" for c in completions],
        "task_ids": [f"{c['task_id']} ({c['variant']})" for c in completions],
    }


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        loaded = [json.loads(line) for line in f if line.strip()]
    result = asyncio.run(main(sys.argv[1], loaded, int(sys.argv[3])))
    print(json.dumps(result))
