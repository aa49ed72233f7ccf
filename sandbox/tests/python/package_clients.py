"""The installed `azr_sandbox` package against a real daemon.

    package_clients.py SOCKET [CASES.jsonl]

Prints one JSON object; `sandbox/tests/python_package.rs` asserts on it. With CASES (from
scripts/humaneval-cases.sh), also scores every HumanEval completion through veRL's and
TRL's reward functions and reports verdicts and completions/s.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pickle
import statistics
import sys
import tempfile
import time
from typing import Any

from azr_sandbox import (
    AssertCase,
    AsyncSandbox,
    CallCase,
    Limits,
    Program,
    RetryPolicy,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    StdioCase,
    Verdict,
)
from azr_sandbox.trl import make_sandbox_reward, sandbox_reward
from azr_sandbox.verl import compute_score

DOUBLER = "n = int(input())\nprint(n * 2)\n"


def in_child(sandbox: Sandbox, out: Any) -> None:
    out.put(sandbox.test(DOUBLER, [StdioCase("4\n", "8")])[0].passed)


def sync_client(socket: str) -> dict[str, Any]:
    sandbox = Sandbox(socket, max_batch_tasks=2)
    result: dict[str, Any] = {"health": sandbox.health()["status"]}
    run = sandbox.run("def f(x):\n    print('hi')\n    return x * 2", input="21")
    result["run"] = [run.verdict.value, run.value, run.stdout]
    # Five cases in batches of two: split, and back in order.
    cases = [StdioCase(f"{i}\n", str(2 * i)) for i in range(4)] + [StdioCase("x\n", "0")]
    outcomes = sandbox.test(DOUBLER, cases)
    result["split_batch"] = [o.passed for o in outcomes]
    result["script_error"] = [
        outcomes[-1].exit_code,
        "ValueError" in outcomes[-1].stderr,
    ]
    calls = sandbox.test(
        "class Solution:\n    def twice(self, xs):\n        return [x * 2 for x in xs]\n",
        [CallCase("twice", "[1, 2]", "[2, 4]"), CallCase("twice", "[1]", "[3]")],
    )
    result["calls"] = [o.passed for o in calls]
    asserts = sandbox.test("def f(x):\n    return x + 1\n", [AssertCase("assert f(1) == 2")])
    result["asserts"] = [o.passed for o in asserts]
    # Files in (a module and its cases), a report out, each case from the files as sent.
    graded = Program(
        "import json, harness\nprint(harness.total(json.load(open('cases.json'))))\n"
        "open('report.txt', 'a').write('seen')\n",
        files={"cases.json": "[1, 2, 3]", "harness.py": b"def total(xs):\n    return sum(xs)\n"},
        fetch_files=["report.txt"],
    )
    with_files = sandbox.test(graded, [StdioCase("", "6"), StdioCase("", "6")])
    result["files"] = [[o.passed, {k: v.decode() for k, v in o.files.items()}] for o in with_files]
    timeout = sandbox.test(
        "while True:\n    pass\n", [StdioCase("")], limits=Limits(timeout_ms=200)
    )
    result["timeout"] = timeout[0].verdict.value
    check = sandbox.check("deduction", "def f(x):\n    return x * 2", answer="42", gold_output="42")
    result["deduction"] = check.passed
    try:
        sandbox.run("def f(x):\n    return x", input="1", limits=Limits(timeout_ms=0))
        result["invalid"] = "no error"
    except SandboxError as e:
        result["invalid"] = e.code
    # Pickled into a worker and used after fork: each process opens its own channels.
    clone = pickle.loads(pickle.dumps(sandbox))
    result["pickled"] = clone.test(DOUBLER, [StdioCase("5\n", "10")])[0].passed
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=in_child, args=(sandbox, queue))
    child.start()
    result["forked"] = queue.get(timeout=60)
    child.join(timeout=60)
    return result


async def async_client(socket: str) -> dict[str, Any]:
    sandbox = AsyncSandbox([socket, socket])
    result: dict[str, Any] = {"health": (await sandbox.health())["status"]}
    many = await asyncio.gather(
        *(sandbox.test(DOUBLER, [StdioCase(f"{i}\n", str(2 * i))]) for i in range(32))
    )
    result["concurrent"] = sum(1 for outcomes in many if outcomes[0].passed)
    return result


def unavailable() -> dict[str, Any]:
    """A socket nobody listens on: a clear error, quickly, sync and async; or None."""
    missing = os.path.join(tempfile.mkdtemp(), "nobody.sock")
    quick = RetryPolicy(attempts=3, backoff=0.01)
    result: dict[str, Any] = {}
    started = time.monotonic()
    try:
        Sandbox(missing, retry=quick).test(DOUBLER, [StdioCase("1\n", "2")])
        result["sync"] = "no error"
    except SandboxUnavailable as e:
        result["sync"] = e.code
    try:
        asyncio.run(AsyncSandbox(missing, retry=quick).test(DOUBLER, [StdioCase("1\n", "2")]))
        result["async"] = "no error"
    except SandboxUnavailable as e:
        result["async"] = e.code
    reward = make_sandbox_reward(missing, on_unavailable="none")
    truth = json.dumps({"inputs": ["1\n"], "outputs": ["2\n"]})
    result["trl_none"] = asyncio.run(
        reward([""], ["```python\nprint(2)\n```"], ground_truth=[truth])
    )
    verl = asyncio.run(
        compute_score(
            "x",
            "```python\nprint(2)\n```",
            truth,
            {},
            sandbox_socket=missing,
            on_unavailable="zero",
        )
    )
    result["verl_zero"] = [verl["score"], verl["verdict"]]
    result["seconds"] = time.monotonic() - started
    return result


class Strict(list[Any]):
    """A sequence whose truth value is an error, as a numpy array's is."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value of an array is ambiguous")


class Array(Strict):
    def tolist(self) -> list[Any]:
        return list(self)


def reward_functions(socket: str) -> dict[str, Any]:
    """veRL's and TRL's conventions: stdin/stdout and fn_name test cases, AZR tasks."""
    os.environ["AZR_SANDBOX_SOCKET"] = socket
    stdio = json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]})
    right = "Here:\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    half = "```python\na, b = map(int, input().split())\nprint(3)\n```"
    fn = json.dumps({"fn_name": "add", "inputs": ["1\n2", "[1]\n[2]"], "outputs": ["3", "[1, 2]"]})
    fn_code = "```python\ndef add(a, b):\n    return a + b\n```"
    deduction = {
        "task": "deduction",
        "program": "def f(x):\n    return x * 2",
        "output": "42",
    }
    abduction = {
        "task": "abduction",
        "program": "def f(x):\n    return x * 2",
        "output": "42",
    }
    induction = {"task": "induction", "inputs": ["1", "2"], "outputs": ["2", "4"]}

    async def verl_calls() -> list[dict[str, Any]]:
        # As veRL's reward loop calls it: keywords, awaited, many at once.
        calls: list[tuple[str, Any]] = [
            (right, stdio),
            (half, stdio),
            ("no code here", stdio),
            (fn_code, fn),
            ("<think>x</think><answer>42</answer>", deduction),
            ("<answer>21</answer>", abduction),
            ("<answer>\ndef f(x):\n    return 2 * x\n</answer>", induction),
            ("<answer>20</answer>", abduction),
            # veRL's datasets hold numpy arrays: no truth value, `tolist` for the data.
            (
                fn_code,
                {"fn_name": "add", "inputs": Strict([Array([1, 2])]), "outputs": Strict(["3"])},
            ),
        ]
        return list(
            await asyncio.gather(
                *(
                    compute_score(
                        data_source="test",
                        solution_str=s,
                        ground_truth=g,
                        extra_info={},
                    )
                    for s, g in calls
                )
            )
        )

    verl = asyncio.run(verl_calls())
    plain = asyncio.run(
        sandbox_reward(["p"] * 3, [right, half, right], ground_truth=[stdio, stdio, None])
    )
    chat = asyncio.run(
        sandbox_reward(
            [[{"role": "user", "content": "p"}]] * 2,
            [
                [{"role": "assistant", "content": right}],
                [{"role": "assistant", "content": half}],
            ],
            ground_truth=[stdio, stdio],
        )
    )
    return {
        "verl_scores": [r["score"] for r in verl],
        "verl_verdicts": [r["verdict"] for r in verl],
        "verl_keys": sorted({tuple(sorted(r)) for r in verl}),
        "trl_plain": plain,
        "trl_chat": chat,
    }


def humaneval(cases_path: str) -> dict[str, Any]:
    """Every HumanEval completion through both reward functions; verdicts and speed."""
    with open(cases_path) as f:
        completions = [json.loads(line) for line in f if line.strip()]
    texts = [f"```python\n{c['program']}\n```" for c in completions]
    truths = [
        json.dumps({"assert_case": c["cases"], "inputs": [], "outputs": []}) for c in completions
    ]
    canonical = [c["variant"] == "canonical" for c in completions]

    async def through_verl() -> tuple[list[float], list[float], float]:
        semaphore = asyncio.Semaphore(8)
        latencies: list[float] = []

        async def one(text: str, truth: str) -> float:
            async with semaphore:
                started = time.perf_counter()
                r = await compute_score(
                    data_source="humaneval",
                    solution_str=text,
                    ground_truth=truth,
                    extra_info={},
                )
                latencies.append(time.perf_counter() - started)
                return float(r["score"])

        started = time.perf_counter()
        scores = await asyncio.gather(*(one(t, g) for t, g in zip(texts, truths)))
        return list(scores), latencies, time.perf_counter() - started

    async def through_trl() -> tuple[list[float | None], float]:
        started = time.perf_counter()
        scores: list[float | None] = []
        # TRL hands a reward function one generation batch at a time.
        for i in range(0, len(texts), 16):
            scores += await sandbox_reward(
                ["p"] * len(texts[i : i + 16]),
                texts[i : i + 16],
                ground_truth=truths[i : i + 16],
            )
        return scores, time.perf_counter() - started

    verl_scores, latencies, verl_seconds = asyncio.run(through_verl())
    trl_scores, trl_seconds = asyncio.run(through_trl())
    latencies.sort()
    wrong_verl = [
        f"{c['task_id']} ({c['variant']})"
        for c, s, ok in zip(completions, verl_scores, canonical)
        if (s == 1.0) != ok
    ]
    wrong_trl = [
        f"{c['task_id']} ({c['variant']})"
        for c, s, ok in zip(completions, trl_scores, canonical)
        if (s == 1.0) != ok
    ]
    return {
        "completions": len(completions),
        "wrong_verl": wrong_verl,
        "wrong_trl": wrong_trl,
        "verl_completions_per_s": len(completions) / verl_seconds,
        "verl_p50_ms": 1e3 * statistics.median(latencies),
        "verl_p99_ms": 1e3 * latencies[int(0.99 * (len(latencies) - 1))],
        "trl_completions_per_s": len(completions) / trl_seconds,
    }


def main() -> None:
    socket = sys.argv[1]
    result: dict[str, Any] = {
        "sync": sync_client(socket),
        "async": asyncio.run(async_client(socket)),
        "unavailable": unavailable(),
        "rewards": reward_functions(socket),
        "verdict_names": [v.value for v in Verdict],
    }
    if len(sys.argv) > 2:
        result["humaneval"] = humaneval(sys.argv[2])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
