"""The AZR reference's reward-path mix through the drop-in executor, beside the same calls
made the reference's way, interleaved.

    python sandbox/python/bench/azr_executor.py SOCKET SEEDS.jsonl [--repeats 5] [--answers 8]

For each seed program, the mix an AZR step makes of it: one `check_all` (validation and the
gold output), then `eval_k_output_prediction` and `eval_k_input_prediction` over `--answers`
answers (right and wrong ones). "reference" is a stand-in written for this benchmark, not the
reference's code: one warm pool of the reference's default size (1 worker), created once,
one pool task per call as the reference submits them (`--pool pebble`, the default: the
reference's pool library and per-snippet SIGALRM time-out, `pip install pebble
timeout-decorator`; `--pool stdlib`: a plain `ProcessPoolExecutor`), each running the
reference's code templates (`repr(f(x))` twice for determinism, `gold == f(x)` / `gold ==
answer` per answer) with `exec` and `eval` in fresh globals. "drop-in" is
`azr_sandbox.azr.PythonExecutor` against the daemon at SOCKET. Rounds alternate which side
goes first; the medians of the rounds' wall times and their ratio are printed as JSON.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from azr_sandbox.azr import PythonExecutor


def _run_check_all(code: str, inputs: str) -> tuple[bool, str]:
    """The reference's determinism template: `f` called twice, compared, repr returned."""
    namespace: dict[str, Any] = {}
    try:
        exec(code, namespace)  # noqa: S102 (the stand-in executes, as the reference does)
        first = eval(f"f({inputs})", namespace)
        if first != eval(f"f({inputs})", namespace):
            return False, ""
        return True, repr(first)
    except Exception:  # noqa: BLE001 (any failure is a failed check, as there)
        return False, ""


def _run_k(code: str, gold: str, answers: list[str], kind: str) -> list[bool]:
    """The reference's K templates: `gold == f(answer)` or `gold == answer` per answer."""
    namespace: dict[str, Any] = {}
    try:
        exec(code, namespace)  # noqa: S102
    except Exception:  # noqa: BLE001
        return [False] * len(answers)
    out = []
    for a in answers:
        expression = f"{gold} == f({a})" if kind == "input" else f"{gold} == {a}"
        try:
            out.append(bool(eval(expression, namespace)))
        except Exception:  # noqa: BLE001
            out.append(False)
    return out


def _with_alarm(function: Any, *args: Any) -> Any:
    """`function(*args)` under a 10 s SIGALRM time-out, as the reference's worker runs each
    snippet (`timeout_decorator`)."""
    import timeout_decorator

    return timeout_decorator.timeout(10)(function)(*args)


class ReferenceStandIn:
    """The reference's process model: one warm worker, one task per call. With `pebble`,
    its pool library and time-out mechanics (`pebble.ProcessPool.map(..., timeout=)`, a
    SIGALRM time-out around each snippet); without, a plain `ProcessPoolExecutor`."""

    def __init__(self, pebble: bool) -> None:
        self.pebble = pebble
        if pebble:
            import pebble as pebble_module

            self.pool: Any = pebble_module.ProcessPool(max_workers=1)
        else:
            self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=1)

    def _call(self, function: Any, *args: Any) -> Any:
        if self.pebble:
            future = self.pool.map(_with_alarm, [function], *[[a] for a in args], timeout=10)
            return next(iter(future.result()))
        return self.pool.submit(function, *args).result(timeout=10)

    def check_all(self, code: str, inputs: str) -> tuple[bool, str]:
        result: tuple[bool, str] = self._call(_run_check_all, code, inputs)
        return result

    def eval_k(self, code: str, gold: str, answers: list[str], kind: str) -> list[bool]:
        result: list[bool] = self._call(_run_k, code, gold, answers, kind)
        return result

    def close(self) -> None:
        if self.pebble:
            self.pool.close()
            self.pool.join()
        else:
            self.pool.shutdown()


def workload(path: str, answers: int) -> list[tuple[str, str, list[str], list[str]]]:
    """(program, input, predicted outputs, predicted inputs) per seed program: the right
    answer and wrong ones (other programs' outputs and inputs)."""
    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    out = []
    for i, r in enumerate(records):
        code = "\n".join([*r["imports"], r["snippet"]])
        others = [records[(i + j) % len(records)] for j in range(1, answers)]
        outputs = [r["output"], *(o["output"] for o in others)]
        inputs = [r["input"], *(o["input"] for o in others)]
        out.append((code, r["input"], outputs, inputs))
    return out


def reference_round(ref: ReferenceStandIn, work: list[Any]) -> float:
    start = time.perf_counter()
    for code, given, outputs, inputs in work:
        ok, gold = ref.check_all(code, given)
        if ok:
            ref.eval_k(code, gold, outputs, "output")
            ref.eval_k(code, gold, inputs, "input")
    return time.perf_counter() - start


def drop_in_round(ours: PythonExecutor, work: list[Any]) -> float:
    start = time.perf_counter()
    for code, given, outputs, inputs in work:
        ok, gold = ours.check_all(code, given)
        if ok and gold is not None:
            ours.eval_k_output_prediction(code, gold, outputs)
            ours.eval_k_input_prediction(code, gold, inputs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("socket")
    parser.add_argument("seeds")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--answers", type=int, default=8)
    parser.add_argument(
        "--pool",
        choices=["pebble", "stdlib"],
        default="pebble",
        help="the stand-in's pool: the reference's (pebble, timeout-decorator) or the stdlib's",
    )
    args = parser.parse_args()
    work = workload(args.seeds, args.answers)
    # The seed programs run here too (one writes a file): not in the caller's directory.
    os.chdir(tempfile.mkdtemp(prefix="azr-executor-bench-"))
    ref = ReferenceStandIn(args.pool == "pebble")
    ours = PythonExecutor(timeout_length=10, ast_check=True, sockets=args.socket)
    reference_round(ref, work[:8])  # warm both sides
    drop_in_round(ours, work[:8])
    times: dict[str, list[float]] = {"reference": [], "drop_in": []}
    for round_ in range(args.repeats):
        sides = ["reference", "drop_in"] if round_ % 2 == 0 else ["drop_in", "reference"]
        for side in sides:
            if side == "reference":
                times[side].append(reference_round(ref, work))
            else:
                times[side].append(drop_in_round(ours, work))
    ref.close()
    medians = {side: statistics.median(t) for side, t in times.items()}
    print(
        json.dumps(
            {
                "programs": len(work),
                "pool": args.pool,
                "answers": args.answers,
                "seconds": times,
                "median_s": medians,
                "speedup": medians["reference"] / medians["drop_in"],
            }
        )
    )


if __name__ == "__main__":
    main()
