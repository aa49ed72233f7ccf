"""Scoring a completion in the sandbox: what the veRL and TRL reward functions share.

A ground truth (a dict, or its JSON text) is one of:

- **test cases** in veRL's format: `{"inputs": [...], "outputs": [...]}` runs the code as a
  script per case (stdin in, stdout compared by lines); with `"fn_name"`, each case calls
  that function instead (a global function, or `Solution().fn_name`): an input is a JSON
  value per line (one per argument; a list is taken as the argument list itself), an output
  the expected value as JSON (text that is not JSON is the expected string). The value is
  compared by the sandbox's judge, not as printed text. `"assert_case": [...]` adds assert
  tests.
- **a HumanEval-style test**: `{"test": "def check(candidate): ...", "entry_point": "f"}`.
- **an AZR task**: `{"task": "deduction" | "abduction" | "induction", "program": ...,
  "imports": [...], "input": ..., "output": ..., "inputs": [...], "outputs": [...]}`; the
  answer is the completion's last `<answer>...</answer>`.

The code of a test-case completion is taken as veRL takes it: the last ```` ```python ````
block, else the first fenced block; a completion with no block scores 0 (verdict
`no_code`). One completion's cases go to the sandbox in one batch.

Prefer `fn_name` cases (function calls) to assert tests and HumanEval-style `check` code
where a policy is trained on the reward: a call case's expected value is computed before the
solution runs and compared natively, so no solution can change it, while assert tests run as
Python beside the solution and are hardened, not unforgeable (SECURITY.md, *The judge*,
lists what holds). An AZR deduction or abduction answer may not run the program it
predicts: one that calls `f` scores 0 (error type `AnswerUsesProgram`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .client import AsyncSandbox
from .types import AssertCase, CallCase, Outcome, Program, StdioCase, TestCase, Verdict

AZR_TASKS = ("deduction", "abduction", "induction")


@dataclass(frozen=True)
class Score:
    """A completion's score and what it is made of. `as_dict` has the same keys for every
    completion (veRL stacks the fields of a batch into arrays)."""

    score: float
    verdict: str
    passed_cases: int
    total_cases: int
    sandbox_ms: float
    task: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def extract_code(text: str) -> str | None:
    """The code of a completion, as veRL's SandboxFusion scorer extracts it: the last
    ```` ```python ```` block, else the first fenced block (without a language line)."""
    if "```python" in text:
        return text.split("```python")[-1].split("```")[0]
    parts = text.split("```")
    if len(parts) < 3:
        return None
    block = parts[1]
    first, _, rest = block.partition("\n")
    return rest if first.strip().isalpha() else block


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def extract_answer(text: str) -> str | None:
    """The last `<answer>...</answer>` of a completion, stripped (AZR's answer format)."""
    answers = _ANSWER.findall(text)
    if not answers:
        return None
    answer: str = answers[-1].strip()
    if answer.startswith("```"):
        answer = extract_code(answer) or answer
    return answer.strip()


def parse_ground_truth(ground_truth: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(ground_truth, str):
        try:
            value = json.loads(ground_truth)
        except json.JSONDecodeError as e:
            raise ValueError(f"ground truth is not JSON: {e}") from None
    else:
        value = dict(ground_truth)
    if not isinstance(value, dict):
        raise TypeError("ground truth must be a JSON object")
    return value


def _listed(truth: Mapping[str, Any], key: str) -> list[Any]:
    """A list field of a ground truth, missing or null as empty. Sequences of any kind are
    accepted: veRL's datasets often hold numpy arrays, whose truth value is an error."""
    value = truth.get(key)
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"ground truth field {key!r} must be a list")
    return list(value)


def _plain(value: Any) -> Any:
    """Python data for a value that may come from numpy (`tolist` gives Python scalars and
    lists, whose repr is source the sandbox can read)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _literal(value: Any) -> str:
    """Python source for a JSON value (`true` -> `True`)."""
    return repr(_plain(value))


def _arguments(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, list):
        return ", ".join(_literal(v) for v in value)
    if isinstance(value, str):
        lines = [line for line in value.split("\n") if line.strip()]
        try:
            return ", ".join(_literal(json.loads(line)) for line in lines)
        except json.JSONDecodeError as e:
            raise ValueError(f"fn_name input is not one JSON value per line: {e}") from None
    return _literal(value)


def _expected(value: Any) -> str:
    if isinstance(value, str):
        try:
            return _literal(json.loads(value))
        except json.JSONDecodeError:
            return _literal(value)
    return _literal(value)


def test_cases(truth: Mapping[str, Any]) -> list[TestCase]:
    """The sandbox's cases for a test-case ground truth."""
    cases: list[TestCase] = []
    if "test" in truth and "entry_point" in truth:
        cases.append(AssertCase(f"{truth['test']}\n\ncheck({truth['entry_point']})\n"))
    inputs = _listed(truth, "inputs")
    outputs = _listed(truth, "outputs")
    if len(inputs) != len(outputs):
        raise ValueError(f"{len(inputs)} inputs but {len(outputs)} outputs")
    fn_name = truth.get("fn_name")
    for given, expected in zip(inputs, outputs):
        if fn_name:
            cases.append(CallCase(str(fn_name), _arguments(given), _expected(expected)))
        else:
            stdin = given if isinstance(given, str) else json.dumps(_plain(given))
            want = expected if isinstance(expected, str) else json.dumps(_plain(expected))
            cases.append(StdioCase(stdin, want))
    for test in _listed(truth, "assert_case"):
        cases.append(AssertCase(str(test)))
    if not cases:
        raise ValueError("ground truth has no test cases")
    return cases


def _summary(outcomes: list[Outcome], task: str, all_or_nothing: bool) -> Score:
    passed = sum(1 for o in outcomes if o.passed)
    total = len(outcomes)
    failed = next((o for o in outcomes if not o.passed), None)
    if failed is None:
        verdict = Verdict.OK.value
    elif failed.verdict == Verdict.OK:
        verdict = "wrong_answer"
    else:
        verdict = failed.verdict.value
    fraction = passed / total if total else 0.0
    score = float(passed == total) if all_or_nothing else fraction
    return Score(score, verdict, passed, total, sum(o.micros for o in outcomes) / 1e3, task)


async def score(
    sandbox: AsyncSandbox,
    solution_str: str,
    ground_truth: str | Mapping[str, Any],
    *,
    all_or_nothing: bool = False,
    stop_on_failure: bool = False,
) -> Score:
    """Scores one completion. Test cases score the fraction passed (veRL's SandboxFusion
    rule) or, with `all_or_nothing`, 1 only when all pass; AZR tasks score 1 or 0. Raises
    `SandboxUnavailable` when no daemon answers, `ValueError` for a malformed ground truth."""
    truth = parse_ground_truth(ground_truth)
    task = str(truth.get("task", "tests"))
    if task in AZR_TASKS:
        return await _azr(sandbox, solution_str, truth, task)
    if task != "tests":
        raise ValueError(f"unknown task {task!r} (tests, {', '.join(AZR_TASKS)})")
    cases = test_cases(truth)
    code = extract_code(solution_str)
    if code is None:
        return Score(0.0, "no_code", 0, len(cases), 0.0, task)
    stop = stop_on_failure and all_or_nothing
    outcomes = await sandbox.test(code, cases, stop_on_failure=stop)
    return _summary(outcomes, task, all_or_nothing)


async def _azr(
    sandbox: AsyncSandbox, solution_str: str, truth: Mapping[str, Any], task: str
) -> Score:
    answer = extract_answer(solution_str)
    if answer is None:
        return Score(0.0, "no_answer", 0, 1, 0.0, task)
    imports = [str(i) for i in _listed(truth, "imports")]
    if task == "induction":
        program = Program(answer, imports)
        outcome = await sandbox.check(
            "induction",
            program,
            inputs=[str(i) for i in _listed(truth, "inputs")],
            outputs=[str(o) for o in _listed(truth, "outputs")],
        )
    else:
        program = Program(str(truth["program"]), imports)
        outcome = await sandbox.check(
            task, program, answer=answer, gold_output=str(truth["output"])
        )
    return _summary([outcome], task, all_or_nothing=True)
