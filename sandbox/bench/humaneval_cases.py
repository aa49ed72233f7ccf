"""HumanEval as test-case work for the sandbox: completions, their cases, CPython's verdicts.

Used by `azr-sandbox bench test-cases` and by the verdict-parity test
(`sandbox/tests/humaneval.rs`); standard library only.

    humaneval_cases.py cases HUMANEVAL.jsonl OUT.jsonl [VARIANTS]
        Writes one JSON line per completion: the canonical solution of each of the 164
        problems and VARIANTS (default 7) wrong variants of it, with the problem's `check`
        split into one assert-style case per assertion, and CPython's verdict on each case.

    humaneval_cases.py baseline CASES.jsonl WORKERS STRIDE [--stop-on-failure]
        The subprocess-per-test baseline: for every STRIDE-th completion, each case runs in
        its own `python3` process (program, then the case), WORKERS at a time; prints one
        JSON line with the time taken, per-completion latencies and verdicts.

Wrong variants are single-site mutations of the canonical solution (a comparison, an
arithmetic operator, an integer constant, a boolean operator, a `not` dropped), kept only if
CPython fails at least one case, quickly and without a timeout; a problem with too few such
mutants is filled up with a body that returns None and one that raises. The choice is seeded
by the problem's index, so the output is the same on every machine with the same CPython.
"""

from __future__ import annotations

import ast
import copy
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any

CASE_SECONDS = 2.0
"""A case slower than this in CPython makes a mutant unusable (the benchmark is about
verdicts, not timeouts)."""

COMPARISONS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
ARITHMETIC: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
}


def split_check(test: str, entry_point: str) -> list[str]:
    """One program text per assertion of `check`: the test module's other statements, then
    `check` with the setup statements before the assertion and the assertion itself."""
    module = ast.parse(test)
    preamble = [
        s
        for s in module.body
        if not (isinstance(s, ast.FunctionDef) and s.name == "check")
    ]
    checks = [
        s for s in module.body if isinstance(s, ast.FunctionDef) and s.name == "check"
    ]
    if len(checks) != 1:
        raise ValueError("expected one `check` function")
    check = checks[0]
    setup: list[ast.stmt] = []
    cases = []
    for statement in check.body:
        if isinstance(statement, ast.Expr) and isinstance(
            statement.value, ast.Constant
        ):
            continue  # a docstring or a bare string
        if any(isinstance(node, ast.Assert) for node in ast.walk(statement)):
            function = copy.deepcopy(check)
            function.body = [*copy.deepcopy(setup), statement]
            call = ast.parse(f"check({entry_point})").body
            case = ast.Module(body=[*preamble, function, *call], type_ignores=[])
            cases.append(ast.unparse(ast.fix_missing_locations(case)) + "\n")
        else:
            setup.append(statement)
    if not cases:
        raise ValueError("`check` asserts nothing")
    return cases


def mutation_sites(tree: ast.Module) -> Iterator[tuple[str, ast.Module]]:
    """Every single-site mutant of the module's functions, with a description."""
    count = sum(1 for _ in ast.walk(tree))
    for index in range(count):
        for label in ("swap", "const", "drop"):
            mutant = copy.deepcopy(tree)
            node = list(ast.walk(mutant))[index]
            description = mutate(node, label)
            if description is not None:
                yield description, ast.fix_missing_locations(mutant)


def mutate(node: ast.AST, label: str) -> str | None:
    if label == "swap" and isinstance(node, ast.Compare):
        op = type(node.ops[0])
        if op in COMPARISONS:
            node.ops[0] = COMPARISONS[op]()
            return f"comparison {op.__name__} -> {COMPARISONS[op].__name__}"
    if label == "swap" and isinstance(node, ast.BinOp):
        op2 = type(node.op)
        if op2 in ARITHMETIC:
            node.op = ARITHMETIC[op2]()
            return f"operator {op2.__name__} -> {ARITHMETIC[op2].__name__}"
    if label == "swap" and isinstance(node, ast.BoolOp):
        old = type(node.op)
        node.op = ast.Or() if old is ast.And else ast.And()
        return f"boolean {old.__name__} swapped"
    if (
        label == "const"
        and isinstance(node, ast.Constant)
        and type(node.value) is int
        and abs(node.value) < 1000
    ):
        node.value += 1
        return f"constant {node.value - 1} -> {node.value}"
    if (
        label == "drop"
        and isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.Not)
    ):
        # `not x` becomes `bool(x)`: the same type, the opposite truth.
        node.op = ast.UAdd()
        node.operand = ast.Call(
            func=ast.Name("bool", ast.Load()), args=[node.operand], keywords=[]
        )
        return "not dropped"
    return None


def replaced_body(tree: ast.Module, entry_point: str, body: str) -> ast.Module:
    mutant = copy.deepcopy(tree)
    for node in ast.walk(mutant):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            node.body = ast.parse(body).body
    return ast.fix_missing_locations(mutant)


PERTURBATIONS = [
    (
        "grown",
        """if isinstance(r, bool): return not r
if isinstance(r, (int, float)): return r + 1
if isinstance(r, (str, list, tuple)): return r + r[:1] if r else r + type(r)('x' if isinstance(r, str) else [0])
return None""",
    ),
    (
        "shrunk",
        """if isinstance(r, bool): return not r
if isinstance(r, (int, float)): return r - 1
if isinstance(r, (str, list, tuple)): return r[:-1] if r else None
return 0""",
    ),
    (
        "negated",
        """if isinstance(r, bool): return not r
if isinstance(r, (int, float)): return -r
if isinstance(r, (str, list, tuple)): return r[::-1]
return None""",
    ),
    ("emptied", "return type(r)() if r is not None else 0"),
    ("as text", "return repr(r) if isinstance(r, str) else str(r)"),
    ("first argument", "return args[0] if args else None"),
]
"""Wrong answers made from the right one: the function is wrapped, and its result changed."""


def wrapped(tree: ast.Module, entry_point: str, perturbation: str) -> ast.Module:
    mutant = copy.deepcopy(tree)
    for node in mutant.body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            node.name = f"_right_{entry_point}"
    body = "\n".join("    " + line for line in perturbation.splitlines())
    wrapper = f"def {entry_point}(*args, **kwargs):\n    r = _right_{entry_point}(*args, **kwargs)\n{body}\n"
    mutant.body.extend(ast.parse(wrapper).body)
    return ast.fix_missing_locations(mutant)


class CaseTimeout(Exception):
    pass


def on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise CaseTimeout


def cpython_verdicts(program: str, cases: list[str]) -> tuple[list[bool], bool]:
    """CPython's verdict on each case (the program, then the case, in a fresh namespace),
    and whether any case timed out."""
    signal.signal(signal.SIGALRM, on_alarm)
    passed = []
    slow = False
    for case in cases:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
        try:
            exec(compile(program, "<program>", "exec"), namespace)  # noqa: S102 (the point)
            exec(compile(case, "<case>", "exec"), namespace)  # noqa: S102
            passed.append(True)
        except CaseTimeout:
            slow = True
            passed.append(False)
        except BaseException:  # noqa: BLE001 (any failure fails the case)
            passed.append(False)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return passed, slow


def completions(
    index: int, problem: dict[str, Any], variants: int
) -> list[dict[str, Any]]:
    entry_point = problem["entry_point"]
    canonical = problem["prompt"] + problem["canonical_solution"]
    cases = split_check(problem["test"], entry_point)
    verdicts, _ = cpython_verdicts(canonical, cases)
    out = [
        {
            "task_id": problem["task_id"],
            "entry_point": entry_point,
            "variant": "canonical",
            "program": canonical,
            "test": problem["test"],
            "cases": cases,
            "cpython": verdicts,
        }
    ]
    tree = ast.parse(canonical)
    mutants = list(mutation_sites(tree))
    random.Random(index).shuffle(mutants)
    fallback = [
        ("returns None", replaced_body(tree, entry_point, "return None")),
        (
            "raises",
            replaced_body(tree, entry_point, "raise ValueError('wrong variant')"),
        ),
        *[
            (f"result {name}", wrapped(tree, entry_point, body))
            for name, body in PERTURBATIONS
        ],
    ]
    seen = {canonical}
    chosen: list[dict[str, Any]] = []
    for description, mutant in [*mutants, *fallback]:
        if len(chosen) == variants:
            break
        program = ast.unparse(mutant) + "\n"
        if program in seen:
            continue
        seen.add(program)
        started = time.perf_counter()
        verdicts, slow = cpython_verdicts(program, cases)
        if slow or all(verdicts) or time.perf_counter() - started > CASE_SECONDS:
            continue
        chosen.append(
            {
                "task_id": problem["task_id"],
                "entry_point": entry_point,
                "variant": description,
                "program": program,
                "test": problem["test"],
                "cases": cases,
                "cpython": verdicts,
            }
        )
    return out + chosen


def one_problem(arguments: list[str]) -> None:
    """Child mode: one problem's completions as JSON lines on stdout (a child, so that a
    mutant that crashes CPython or exhausts memory costs only its problem's mutants)."""
    index, variants = int(arguments[0]), int(arguments[1])
    problem = json.loads(sys.stdin.read())
    for completion in completions(index, problem, variants):
        print(json.dumps(completion))


def make_cases(source: Path, out: Path, variants: int) -> None:
    problems = [
        json.loads(line) for line in source.read_text().splitlines() if line.strip()
    ]

    def run(index: int) -> list[str]:
        child = subprocess.run(
            [sys.executable, __file__, "one-problem", str(index), str(variants)],
            input=json.dumps(problems[index]),
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if child.returncode != 0:
            raise RuntimeError(f"problem {index}: {child.stderr}")
        return child.stdout.splitlines()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(len(problems))))
    lines = [line for result in results for line in result]
    short = [
        problems[i]["task_id"] for i, r in enumerate(results) if len(r) != variants + 1
    ]
    if short:
        raise RuntimeError(
            f"problems with fewer than {variants} wrong variants: {short}"
        )
    for line in lines:
        completion = json.loads(line)
        if (completion["variant"] == "canonical") != all(completion["cpython"]):
            raise RuntimeError(
                f"{completion['task_id']} {completion['variant']}: CPython disagrees"
            )
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(out)


def baseline(
    cases_path: Path, workers: int, stride: int, stop_on_failure: bool
) -> None:
    completions = [
        json.loads(line) for line in cases_path.read_text().splitlines() if line.strip()
    ]
    sample = completions[::stride]
    with tempfile.TemporaryDirectory() as scratch:
        files = []
        for i, completion in enumerate(sample):
            paths = []
            for j, case in enumerate(completion["cases"]):
                path = Path(scratch) / f"c{i}_{j}.py"
                path.write_text(completion["program"] + "\n\n" + case)
                paths.append(str(path))
            files.append(paths)

        def one(paths: list[str]) -> tuple[float, bool]:
            started = time.perf_counter()
            passed = True
            for path in paths:
                try:
                    child = subprocess.run(
                        [sys.executable, path],
                        check=False,
                        capture_output=True,
                        timeout=10,
                        cwd=scratch,
                    )
                    passed &= child.returncode == 0
                except subprocess.TimeoutExpired:
                    passed = False
                if stop_on_failure and not passed:
                    break
            return time.perf_counter() - started, passed

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, files))
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "completions": len(sample),
                "cases": sum(len(f) for f in files),
                "seconds": seconds,
                "latencies": [r[0] for r in results],
                "passed": [r[1] for r in results],
                "canonical": [c["variant"] == "canonical" for c in sample],
                "task_ids": [f"{c['task_id']} ({c['variant']})" for c in sample],
            }
        )
    )


def main() -> None:
    mode, arguments = sys.argv[1], sys.argv[2:]
    if mode == "cases":
        variants = int(arguments[2]) if len(arguments) > 2 else 7
        make_cases(Path(arguments[0]), Path(arguments[1]), variants)
    elif mode == "one-problem":
        one_problem(arguments)
    elif mode == "baseline":
        stop = "--stop-on-failure" in arguments[3:]
        baseline(Path(arguments[0]), int(arguments[1]), int(arguments[2]), stop)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
