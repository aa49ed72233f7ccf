"""The values a caller hands the sandbox and gets back, independent of the wire format."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Union

from ._proto import sandbox_pb2 as pb


class Verdict(str, enum.Enum):
    """How a task ended (`azr.sandbox.v1.Verdict` without its prefix)."""

    UNSPECIFIED = "unspecified"
    OK = "ok"
    ERROR = "error"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    OUT_OF_FUEL = "out_of_fuel"
    OUT_OF_MEMORY = "out_of_memory"
    OUTPUT_LIMIT = "output_limit"
    FAULT = "fault"
    SKIPPED = "skipped"

    @classmethod
    def from_proto(cls, value: int) -> Verdict:
        name: str = pb.Verdict.Name(value)
        return cls(name.removeprefix("VERDICT_").lower())


@dataclass(frozen=True)
class Outcome:
    """One task's result. `passed` is set for checks and test cases: for a stdio case, exit
    status 0 and the expected output; for a call, the judge's comparison; for asserts, no
    exception."""

    verdict: Verdict
    passed: bool | None = None
    value: str | None = None
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    fuel_used: int = 0
    micros: int = 0
    #: The program's `fetch_files` that named a file when the task ended.
    files: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, o: Any) -> Outcome:
        return cls(
            verdict=Verdict.from_proto(o.verdict),
            passed=o.passed if o.HasField("passed") else None,
            value=o.value if o.HasField("value") else None,
            stdout=o.stdout,
            stderr=o.stderr,
            exit_code=o.exit_code if o.HasField("exit_code") else None,
            error_type=o.error_type if o.HasField("error_type") else None,
            error_message=o.error_message if o.HasField("error_message") else None,
            fuel_used=o.fuel_used,
            micros=o.micros,
            files=dict(o.files),
        )


@dataclass(frozen=True)
class Limits:
    """Per-task limits; None keeps the daemon's configured value. The daemon caps them."""

    timeout_ms: int | None = None
    fuel: int | None = None
    memory_bytes: int | None = None
    stdout_chars: int | None = None
    value_chars: int | None = None
    recursion_limit: int | None = None

    def to_proto(self) -> Any:
        limits = pb.Limits()
        for name in (
            "timeout_ms",
            "fuel",
            "memory_bytes",
            "stdout_chars",
            "value_chars",
            "recursion_limit",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(limits, name, value)
        return pb.Options(limits=limits)


@dataclass(frozen=True)
class StdioCase:
    """Run the program as `python3 prog.py < stdin`; with `expected_stdout`, it passes on exit
    status 0 and a match: `lines` (trailing whitespace and empty lines ignored), `exact` or
    `tokens` (whitespace-separated)."""

    stdin: str = ""
    expected_stdout: str | None = None
    match: str = "lines"

    def to_proto(self) -> Any:
        matches = {
            "lines": pb.OUTPUT_MATCH_LINES,
            "exact": pb.OUTPUT_MATCH_EXACT,
            "tokens": pb.OUTPUT_MATCH_TOKENS,
        }
        if self.match not in matches:
            raise ValueError(f"match must be one of {sorted(matches)}, not {self.match!r}")
        case = pb.StdioCase(stdin=self.stdin, output_match=matches[self.match])
        if self.expected_stdout is not None:
            case.expected_stdout = self.expected_stdout
        return pb.TestTask(stdio=case)


@dataclass(frozen=True)
class CallCase:
    """Call `function(<arguments>)` (falling back to `Solution().function`) and compare the
    result with `expected` by the sandbox's judge. `arguments` is a Python argument list and
    `expected` a Python expression, both plain data (`"[1, 2], k=3"`, `"[2, 1]"`)."""

    function: str
    arguments: str
    expected: str

    def to_proto(self) -> Any:
        return pb.TestTask(
            call=pb.CallCase(
                function=self.function, arguments=self.arguments, expected=self.expected
            )
        )


@dataclass(frozen=True)
class AssertCase:
    """Run assert-style test code after the program, in a copy of its namespace."""

    test: str

    def to_proto(self) -> Any:
        return pb.TestTask(asserts=pb.AssertCase(test=self.test))


TestCase = Union[StdioCase, CallCase, AssertCase]


@dataclass(frozen=True)
class Program:
    """A program and the import lines it runs under (AZR tasks keep them apart).

    `files` (path relative to the working directory → content) are there before the program
    runs, as SandboxFusion's `files` are: a harness module to import, test cases to read.
    They live in the sandbox's memory; every task starts from them as sent. `fetch_files`
    names paths each outcome brings back in `Outcome.files` (missing ones left out). Run
    and test only: validation and the AZR checks take no files."""

    source: str
    imports: list[str] = field(default_factory=list)
    files: dict[str, bytes | str] = field(default_factory=dict)
    fetch_files: list[str] = field(default_factory=list)

    def to_proto(self) -> Any:
        return pb.Program(
            source=self.source,
            imports=list(self.imports),
            files={
                path: content.encode() if isinstance(content, str) else bytes(content)
                for path, content in self.files.items()
            },
            fetch_files=list(self.fetch_files),
        )
