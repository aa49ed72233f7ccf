"""Sync and asyncio clients of the azr-sandbox daemon (`azr.sandbox.v1` over Unix sockets).

They behave like the Rust client: channels reconnect by themselves when a daemon restarts,
`UNAVAILABLE` and `RESOURCE_EXHAUSTED` are retried with back-off (each retry on the next
socket), batches larger than the daemon accepts are split, and several sockets share the
load by round robin. Every call has a deadline, so a daemon that is down or stuck ends in
`SandboxUnavailable` or `SandboxError`, never a hang.

Channels are opened lazily, per process (and, for the asyncio client, per event loop), so a
client can be made before `fork`, pickled into a Ray or multiprocessing worker, or shared by
the event loops of several threads.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, Union

import grpc
import grpc.aio

if TYPE_CHECKING:
    from typing_extensions import Self

from ._proto import sandbox_pb2 as pb
from ._proto import sandbox_pb2_grpc as pb_grpc
from .types import Limits, Outcome, Program, TestCase

DEFAULT_SOCKET = "/run/azr-sandbox/sandbox.sock"
"""Where the packaged systemd units put the daemon's socket."""

SOCKET_ENV = "AZR_SANDBOX_SOCKET"
"""Socket paths, separated by commas, used when a client is made without any."""

_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
_MAX_MESSAGE = 256 * 1024 * 1024

T = TypeVar("T")


class SandboxError(Exception):
    """The daemon refused or failed a call; `code` is the gRPC status code's name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SandboxUnavailable(SandboxError):
    """No daemon answered (after the retries): not started, socket missing, or overloaded."""


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (1 = no retry); the first wait, doubled after each retry up to
    `max_backoff` (seconds, with ±25 % jitter)."""

    attempts: int = 8
    backoff: float = 0.01
    max_backoff: float = 1.0


Sockets = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]], None]


def _socket_list(sockets: Sockets) -> list[str]:
    if sockets is None:
        env = os.environ.get(SOCKET_ENV, "")
        paths = [p.strip() for p in env.split(",") if p.strip()] or [DEFAULT_SOCKET]
    elif isinstance(sockets, (str, os.PathLike)):
        paths = [os.fspath(sockets)]
    else:
        paths = [os.fspath(s) for s in sockets]
    if not paths:
        raise ValueError("no socket path given")
    return paths


def _target(path: str) -> str:
    # grpc's unix: scheme wants an absolute path after `unix://`, or a relative one after `unix:`.
    return f"unix://{path}" if path.startswith("/") else f"unix:{path}"


_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    # The socket path is not a valid HTTP/2 authority (the daemon copes, but say it plainly).
    ("grpc.default_authority", "localhost"),
]


def _program(program: str | Program, imports: Iterable[str] = ()) -> Any:
    if isinstance(program, Program):
        return program.to_proto()
    return pb.Program(source=program, imports=list(imports))


def _options(limits: Limits | None) -> Any:
    return limits.to_proto() if limits is not None else pb.Options()


def _error(e: grpc.RpcError, socket: str) -> SandboxError:
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else None) or str(e)
    name = code.name if code is not None else "UNKNOWN"
    if code in _RETRYABLE:
        return SandboxUnavailable(name, f"{details} (socket {socket})")
    return SandboxError(name, details)


def _chunks(tasks: list[T], size: int) -> list[list[T]]:
    return [tasks[i : i + size] for i in range(0, len(tasks), size)]


def _test_requests(
    program: str | Program,
    cases: Sequence[TestCase],
    imports: Iterable[str],
    stop_on_failure: bool,
    limits: Limits | None,
    max_batch_tasks: int,
) -> list[Any]:
    """One program's cases as `TestBatchRequest`s of at most `max_batch_tasks` tasks."""
    prog, options = _program(program, imports), _options(limits)
    tasks = [c.to_proto() for c in cases]
    return [
        pb.TestBatchRequest(
            tasks=chunk, program=prog, options=options, stop_on_failure=stop_on_failure
        )
        for chunk in _chunks(tasks, max_batch_tasks)
    ]


def _run_request(
    program: str | Program, input: str | None, imports: Iterable[str], limits: Limits | None
) -> Any:
    task = pb.RunTask(program=_program(program, imports))
    if input is not None:
        task.input = input
    return pb.RunRequest(task=task, options=_options(limits))


def _health(r: Any) -> dict[str, Any]:
    return {
        "status": r.status,
        "version": r.version,
        "guest": r.guest,
        "workers": r.workers,
        "queue_capacity": r.queue_capacity,
        "max_batch_tasks": r.max_batch_tasks,
    }


class _Config:
    """What a client is, without its channels: this is what pickling keeps."""

    def __init__(
        self,
        sockets: Sockets = None,
        *,
        timeout: float = 600.0,
        retry: RetryPolicy = RetryPolicy(),
        max_batch_tasks: int = 4096,
    ) -> None:
        self.sockets = _socket_list(sockets)
        self.timeout = timeout
        self.retry = retry
        self.max_batch_tasks = max(1, max_batch_tasks)
        self._next = itertools.count(random.randrange(len(self.sockets)))

    def _pick(self) -> int:
        return next(self._next) % len(self.sockets)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "sockets": self.sockets,
            "timeout": self.timeout,
            "retry": self.retry,
            "max_batch_tasks": self.max_batch_tasks,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["sockets"],
            timeout=state["timeout"],
            retry=state["retry"],
            max_batch_tasks=state["max_batch_tasks"],
        )

    def _backoff(self, wait: float) -> tuple[float, float]:
        """The jittered wait now, and the next base wait."""
        return wait * random.uniform(0.75, 1.25), min(wait * 2, self.retry.max_backoff)


class Sandbox(_Config):
    """A synchronous client.

    >>> sandbox = Sandbox("/run/azr-sandbox/sandbox.sock")
    >>> sandbox.run("def f(x):\\n    return x * 2", input="21").value
    '42'
    """

    def __init__(self, sockets: Sockets = None, **kwargs: Any) -> None:
        super().__init__(sockets, **kwargs)
        self._lock = threading.Lock()
        self._pid = -1
        self._stubs: list[Any] = []
        self._channels: list[grpc.Channel] = []

    def _stub(self, index: int) -> Any:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must not use its parent's channels: make its own.
                self._channels = [
                    grpc.insecure_channel(_target(s), options=_OPTIONS) for s in self.sockets
                ]
                self._stubs = [
                    pb_grpc.SandboxStub(c)  # type: ignore[no-untyped-call]
                    for c in self._channels
                ]
                self._pid = os.getpid()
            return self._stubs[index]

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                for channel in self._channels:
                    channel.close()
            self._channels, self._stubs, self._pid = [], [], -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        wait = self.retry.backoff
        for attempt in itertools.count(1):
            index = self._pick()
            try:
                return getattr(self._stub(index), method)(request, timeout=self.timeout)
            except grpc.RpcError as e:
                retry = e.code() in _RETRYABLE and attempt < self.retry.attempts
                if not retry:
                    raise _error(e, self.sockets[index]) from None
                sleep, wait = self._backoff(wait)
                time.sleep(sleep)
        raise AssertionError("unreachable")

    def health(self) -> dict[str, Any]:
        """The daemon's status, version, guest, workers and limits."""
        return _health(self._call("Health", pb.HealthRequest()))

    def run(
        self,
        program: str | Program,
        input: str | None = None,
        *,
        imports: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> Outcome:
        """Runs a program; with `input` (Python argument source), `repr(f(<input>))`."""
        request = _run_request(program, input, imports, limits)
        return Outcome.from_proto(self._call("Run", request))

    def check(
        self,
        kind: str,
        program: str | Program,
        *,
        answer: str = "",
        gold_output: str = "",
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        imports: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> Outcome:
        """An AZR check (`deduction`, `abduction` or `induction`); see `check_task`."""
        task = check_task(
            kind,
            program,
            answer=answer,
            gold_output=gold_output,
            inputs=inputs,
            outputs=outputs,
            imports=imports,
        )
        request = pb.CheckRequest(task=task, options=_options(limits))
        return Outcome.from_proto(self._call("Check", request))

    def test(
        self,
        program: str | Program,
        cases: Sequence[TestCase],
        *,
        imports: Iterable[str] = (),
        stop_on_failure: bool = False,
        limits: Limits | None = None,
    ) -> list[Outcome]:
        """Runs one program against its test cases in one batch (split if larger than the
        daemon accepts); returns one outcome per case, in order."""
        requests = _test_requests(
            program, cases, imports, stop_on_failure, limits, self.max_batch_tasks
        )
        replies = [self._call("TestBatch", r) for r in requests]
        return [Outcome.from_proto(o) for reply in replies for o in reply.outcomes]


class AsyncSandbox(_Config):
    """An asyncio client (grpc.aio): calls never block the event loop, and any number may
    be in flight at once; the daemon's queue bounds the work actually running."""

    def __init__(self, sockets: Sockets = None, **kwargs: Any) -> None:
        super().__init__(sockets, **kwargs)
        self._lock = threading.Lock()
        self._pid = -1
        # grpc.aio channels belong to the loop they were made on.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Any]] = (
            weakref.WeakKeyDictionary()
        )

    def _stub(self, index: int) -> Any:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._pid != os.getpid():
                self._per_loop = weakref.WeakKeyDictionary()
                self._pid = os.getpid()
            stubs = self._per_loop.get(loop)
            if stubs is None:
                stubs = [
                    pb_grpc.SandboxStub(  # type: ignore[no-untyped-call]
                        grpc.aio.insecure_channel(_target(s), options=_OPTIONS)
                    )
                    for s in self.sockets
                ]
                self._per_loop[loop] = stubs
            return stubs[index]

    async def _call(self, method: str, request: Any) -> Any:
        wait = self.retry.backoff
        for attempt in itertools.count(1):
            index = self._pick()
            try:
                return await getattr(self._stub(index), method)(request, timeout=self.timeout)
            except grpc.aio.AioRpcError as e:
                retry = e.code() in _RETRYABLE and attempt < self.retry.attempts
                if not retry:
                    raise _error(e, self.sockets[index]) from None
                sleep, wait = self._backoff(wait)
                await asyncio.sleep(sleep)
        raise AssertionError("unreachable")

    async def health(self) -> dict[str, Any]:
        return _health(await self._call("Health", pb.HealthRequest()))

    async def run(
        self,
        program: str | Program,
        input: str | None = None,
        *,
        imports: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> Outcome:
        request = _run_request(program, input, imports, limits)
        return Outcome.from_proto(await self._call("Run", request))

    async def check(
        self,
        kind: str,
        program: str | Program,
        *,
        answer: str = "",
        gold_output: str = "",
        inputs: Sequence[str] = (),
        outputs: Sequence[str] = (),
        imports: Iterable[str] = (),
        limits: Limits | None = None,
    ) -> Outcome:
        task = check_task(
            kind,
            program,
            answer=answer,
            gold_output=gold_output,
            inputs=inputs,
            outputs=outputs,
            imports=imports,
        )
        r = await self._call("Check", pb.CheckRequest(task=task, options=_options(limits)))
        return Outcome.from_proto(r)

    async def test(
        self,
        program: str | Program,
        cases: Sequence[TestCase],
        *,
        imports: Iterable[str] = (),
        stop_on_failure: bool = False,
        limits: Limits | None = None,
    ) -> list[Outcome]:
        """As `Sandbox.test`; the parts of a split batch are sent concurrently."""
        requests = _test_requests(
            program, cases, imports, stop_on_failure, limits, self.max_batch_tasks
        )
        replies = await asyncio.gather(*(self._call("TestBatch", r) for r in requests))
        return [Outcome.from_proto(o) for reply in replies for o in reply.outcomes]


def check_task(
    kind: str,
    program: str | Program,
    *,
    answer: str = "",
    gold_output: str = "",
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    imports: Iterable[str] = (),
) -> Any:
    """An AZR check: `deduction` (the answer is `f`'s output for the program's input: pass
    `gold_output` and `answer`), `abduction` (the answer is an input giving `gold_output`),
    `induction` (the program is the answer; it must map each of `inputs` to `outputs`).

    A deduction or abduction answer may not run the program it predicts: one that needs the
    program's definitions (`f(3)` as an output) fails with error type `AnswerUsesProgram`."""
    prog = _program(program, imports)
    if kind == "deduction":
        return pb.CheckTask(
            program=prog, deduction=pb.Deduction(gold_output=gold_output, answer=answer)
        )
    if kind == "abduction":
        return pb.CheckTask(
            program=prog, abduction=pb.Abduction(gold_output=gold_output, answer=answer)
        )
    if kind == "induction":
        return pb.CheckTask(
            program=prog, induction=pb.Induction(inputs=list(inputs), outputs=list(outputs))
        )
    raise ValueError(f"kind must be deduction, abduction or induction, not {kind!r}")
