"""A drop-in executor for the AZR reference trainer (`LeapLabTHU/Absolute-Zero-Reasoner`).

The reference runs model-written code in forked CPython processes with a time-out and
nothing else. `PythonExecutor` here has the same constructor and methods, with the same
arguments, return types and meaning, and runs everything in the azr-sandbox daemon:

    from azr_sandbox.azr import PythonExecutor
    executor = PythonExecutor(timeout_length=10, ast_check=True, max_workers=1)
    ok, gold = executor.check_all(code, "'abc', 3", banned_keywords=["os", "random"])
    executor.eval_output_prediction(code, gold, "'abcabcabc'")     # 1.0 or 0.0

`python -m azr_sandbox.azr_reference <the reference's hydra overrides>` runs the reference's
trainer with it. Where the answer differs from the reference's executor, it is on purpose:

- An answer may not run the program: `f('abc')` as a predicted output, or an input that
  searches with `f`, scores 0.0 (the reference scores them right). Answers are judged as
  values, never pasted into code, so `1) or (True`, `1 or True`, `eval(gold_output)` and
  `print(True)` score 0.0 (each scores 1.0 through some reference method).
- A program that is not deterministic, or raises a bare `Exception`, `StopIteration` or
  `SystemExit`, is invalid: `check_all` returns `(False, None)` where the reference returns
  `(True, '')` (its status line lacks the word "error").
- Banned words are matched against import paths in the sandbox (dotted words such as
  `os.path` match too); programs run with the standard library only, a fixed clock and
  seeded randomness, so `check_determinism=False` changes nothing.
- Gold outputs are whole `repr`s (up to the daemon's `value_chars`), not cut to 400
  characters; values compare as CPython's `==` on plain data.
- `eval_k_*` keep the answers' order (the reference moves unparsable answers to the end).
- A daemon that cannot be reached raises `SandboxUnavailable` (never a silent 0.0).

`imports` may be a list of import lines or a numpy array of them, as the reference passes.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import Any

from ._proto import sandbox_pb2 as pb
from .client import Sandbox, Sockets, check_task
from .types import Limits, Outcome, Verdict

__all__ = ["PythonExecutor"]


def _lines(imports: Any) -> list[str]:
    """Import lines from a list, a tuple, a numpy array (`tolist`) or None."""
    if imports is None:
        return []
    if hasattr(imports, "tolist"):
        imports = imports.tolist()
    if isinstance(imports, str):
        return [imports] if imports.strip() else []
    return [str(line) for line in imports if str(line).strip()]


def _status(o: Outcome) -> str:
    """The reference's status line: "Done", or the exception's last traceback line."""
    if o.verdict is Verdict.OK:
        return "Done"
    if o.verdict in (Verdict.TIMEOUT, Verdict.OUT_OF_FUEL):
        return "Timeout Error"
    if o.error_type and o.error_message:
        return f"{o.error_type}: {o.error_message}"
    return o.error_type or f"Error: {o.verdict.value}"


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return True


class PythonExecutor:
    """The reference's `PythonExecutor`, served by the azr-sandbox daemon.

    The constructor takes the reference's arguments (`runtime`, `get_answer_symbol`,
    `get_answer_expr` and `get_answer_from_stdout` are accepted and unused, as in the
    reference's trainer; `max_workers` is the daemon's business), plus where the daemon is:
    `sockets` (default: `$AZR_SANDBOX_SOCKET`, else `/run/azr-sandbox/sandbox.sock`) or a
    ready `sandbox` client.
    """

    def __init__(
        self,
        runtime: Any | None = None,
        get_answer_symbol: str | None = None,
        get_answer_expr: str | None = None,
        get_answer_from_stdout: bool = False,
        timeout_length: float = 10,
        ast_check: bool = False,
        max_workers: int = 1,
        *,
        sockets: Sockets = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.runtime = runtime
        self.answer_symbol = get_answer_symbol
        self.answer_expr = get_answer_expr
        self.get_answer_from_stdout = get_answer_from_stdout
        self.timeout_length = timeout_length
        self.ast_check = ast_check
        self.max_workers = max_workers
        self.sandbox = sandbox if sandbox is not None else Sandbox(sockets)
        self._limits = Limits(timeout_ms=max(1, int(float(timeout_length) * 1000)))

    # The daemon's operations.

    def _options(self, rules: Any | None = None) -> Any:
        options = self._limits.to_proto()
        if rules is not None:
            options.rules.CopyFrom(rules)
        return options

    def _program(self, code: str, imports: Any) -> Any:
        return pb.Program(source=code, imports=_lines(imports))

    def _validate(self, code: str, inputs: str, imports: Any, rules: Any) -> Outcome:
        task = pb.ValidateTask(program=self._program(code, imports), input=inputs)
        request = pb.ValidateRequest(task=task, options=self._options(rules))
        return Outcome.from_proto(self.sandbox._call("Validate", request))

    def _run(self, code: str, inputs: str | None, imports: Any) -> Outcome:
        task = pb.RunTask(program=self._program(code, imports))
        if inputs is not None:
            task.input = inputs
        request = pb.RunRequest(task=task, options=self._options())
        return Outcome.from_proto(self.sandbox._call("Run", request))

    def _checks(self, code: str, imports: Any, tasks: list[Any]) -> list[Outcome]:
        program, options = self._program(code, imports), self._options()
        size = self.sandbox.max_batch_tasks
        outcomes: list[Outcome] = []
        for start in range(0, len(tasks), size):
            request = pb.CheckBatchRequest(
                tasks=tasks[start : start + size], program=program, options=options
            )
            reply = self.sandbox._call("CheckBatch", request)
            outcomes.extend(Outcome.from_proto(o) for o in reply.outcomes)
        return outcomes

    # The reference's methods.

    def check_all(
        self,
        code: str,
        inputs: str,
        banned_keywords: Iterable[str] = (),
        check_determinism: bool = True,
        imports: Any = (),
        check_error: bool = False,
        banned_keywords_for_errors_and_exceptions: Iterable[str] = (),
    ) -> tuple[bool, str | None]:
        """Validates a proposed program with its input and computes the gold output.

        `(True, repr(f(inputs)))` for a valid program; `(False, None)` when a rule refuses
        it (a banned import or statement, no `f`, not deterministic); `(False, 'error')`
        when it does not parse; `(False, '')` when it fails. With `check_error` (the
        reference's error-prediction tasks) a raised exception is the gold answer:
        `(True, 'NoError')` or `(True, <exception class name>)`.
        """
        rules = pb.Rules(
            banned_words=[str(w) for w in banned_keywords],
            banned_keywords=(
                [str(w) for w in banned_keywords_for_errors_and_exceptions] if check_error else []
            ),
        )
        o = self._validate(code, inputs, imports, rules)
        if o.verdict is Verdict.REJECTED:
            return False, None
        if o.error_type == "SyntaxError":
            return False, "error"
        if check_error:
            if o.verdict is Verdict.OK:
                return True, "NoError"
            if o.verdict is Verdict.ERROR and o.error_type:
                return True, o.error_type
            return False, "error"
        if o.verdict is Verdict.OK and o.value is not None:
            return True, o.value
        return False, ""

    def run_code(self, code: str, inputs: str, imports: Any = ()) -> tuple[str, str]:
        """`(repr(f(inputs)), "Done")`, or `("", <error line>)`."""
        if self.ast_check and not _parses(f"{code}\nrepr(f({inputs}))"):
            return "", "error"
        o = self._run(code, inputs, imports)
        return (o.value or "", "Done") if o.verdict is Verdict.OK else ("", _status(o))

    def validate_code(self, code: str, inputs: str, imports: Any = ()) -> bool:
        """Whether `f(inputs)` runs to the end."""
        return self.run_code(code, inputs, imports)[1] == "Done"

    def eval_input_prediction(
        self, code: str, gold_output: str, agent_input: str, imports: Any = ()
    ) -> float:
        """1.0 when `f(agent_input)` equals the gold output, else 0.0."""
        return self.eval_k_input_prediction(code, gold_output, [agent_input], imports)[0]

    def eval_output_prediction(
        self, code: str, gold_output: str, agent_output: str, imports: Any = ()
    ) -> float:
        """1.0 when the predicted output's value equals the gold output's, else 0.0."""
        return self.eval_k_output_prediction(code, gold_output, [agent_output], imports)[0]

    def eval_k_input_prediction(
        self, code: str, gold_output: str, k_agent_inputs: Sequence[str], imports: Any = ()
    ) -> list[float]:
        """One score per input, in order: the inputs are checked as one batch."""
        return self._scores(code, imports, "abduction", gold_output, k_agent_inputs)

    def eval_k_output_prediction(
        self, code: str, gold_output: str, k_agent_outputs: Sequence[str], imports: Any = ()
    ) -> list[float]:
        """One score per predicted output, in order: checked as one batch."""
        return self._scores(code, imports, "deduction", gold_output, k_agent_outputs)

    def _scores(
        self, code: str, imports: Any, kind: str, gold_output: str, answers: Sequence[str]
    ) -> list[float]:
        """One check of `kind` per answer, as one batch; empty answers score 0.0 without a
        trip to the daemon (the reference's too)."""
        asked = [i for i, a in enumerate(answers) if str(a).strip()]
        tasks = [
            check_task(kind, code, gold_output=gold_output, answer=str(answers[i])) for i in asked
        ]
        for task in tasks:
            task.ClearField("program")  # the batch's program, with its imports
        scores = [0.0] * len(answers)
        if asked:
            for i, o in zip(asked, self._checks(code, imports, tasks)):
                scores[i] = 1.0 if o.verdict is Verdict.OK and o.passed else 0.0
        return scores

    def apply(self, code: str) -> tuple[str, str]:
        """Runs a snippet whose last line is an expression: `(str(value), "Done")`; with
        `print(` on the last line, what it printed. `("", <error line>)` on failure."""
        lines = code.strip().split("\n")
        last = lines[-1]
        if "print(" in last or not _parses(last):
            program = "\n".join(lines)
        else:
            program = "\n".join([*lines[:-1], f"print(str({last}), end='')"])
        o = self._run(program, None, ())
        if o.verdict is not Verdict.OK:
            return "", _status(o)
        return o.stdout.strip(), "Done"

    def batch_apply(self, batch_code: Sequence[str]) -> list[tuple[str, str]]:
        """`apply` of each snippet, in order."""
        return [self.apply(code) for code in batch_code]

    def cleanup(self) -> None:
        """Nothing to recycle: every task starts from a fresh interpreter in the daemon."""
