"""Client and RL reward functions for the azr-sandbox daemon.

    from azr_sandbox import Sandbox, StdioCase
    sandbox = Sandbox("/run/azr-sandbox/sandbox.sock")
    outcomes = sandbox.test("print(int(input()) * 2)", [StdioCase("21\\n", "42")])
    assert outcomes[0].passed

`azr_sandbox.verl.compute_score` and `azr_sandbox.trl.sandbox_reward` plug into veRL and TRL;
`azr_sandbox.azr.PythonExecutor` replaces the AZR reference trainer's executor
(`python -m azr_sandbox.azr_reference` runs that trainer with it).
"""

from .client import (
    DEFAULT_SOCKET,
    SOCKET_ENV,
    AsyncSandbox,
    RetryPolicy,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
    check_task,
)
from .rewards import Score, extract_answer, extract_code, score
from .types import AssertCase, CallCase, Limits, Outcome, Program, StdioCase, TestCase, Verdict

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SOCKET",
    "SOCKET_ENV",
    "AssertCase",
    "AsyncSandbox",
    "CallCase",
    "Limits",
    "Outcome",
    "Program",
    "RetryPolicy",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "Score",
    "StdioCase",
    "TestCase",
    "Verdict",
    "check_task",
    "extract_answer",
    "extract_code",
    "score",
]
