"""TRL `GRPOTrainer` reward functions (TRL runs `async` ones concurrently on its own loop).

    from azr_sandbox.trl import sandbox_reward
    trainer = GRPOTrainer(model=..., reward_funcs=sandbox_reward, train_dataset=dataset, ...)

The dataset carries each prompt's test cases in a `ground_truth` column (the formats of
`azr_sandbox.rewards`: veRL's test-case JSON, a HumanEval-style `test` + `entry_point`, or an
AZR task); TRL passes dataset columns to reward functions by name. Both completion formats
work: plain text, and conversational (a list of messages whose last is the assistant's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, Callable, Optional

from .client import AsyncSandbox, SandboxUnavailable, Sockets
from .rewards import score

RewardFunction = Callable[..., Coroutine[Any, Any, list[Optional[float]]]]


def completion_text(completion: Any) -> str:
    """The text of a plain or conversational completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return str(last.get("content") or "")
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


def make_sandbox_reward(
    sockets: Sockets = None,
    *,
    column: str = "ground_truth",
    all_or_nothing: bool = False,
    on_unavailable: str = "raise",
    name: str = "sandbox_reward",
) -> RewardFunction:
    """A reward function on the daemons at `sockets` (default: `AZR_SANDBOX_SOCKET` or the
    default socket). A completion whose row has no ground truth gets None (TRL leaves it out
    of that reward's mean). When no daemon answers, the call raises `SandboxUnavailable`, or,
    with `on_unavailable="none"`, returns None for every completion."""
    if on_unavailable not in ("raise", "none"):
        raise ValueError(f"on_unavailable must be 'raise' or 'none', not {on_unavailable!r}")
    sandbox = AsyncSandbox(sockets)

    async def reward(
        prompts: list[Any], completions: list[Any], **kwargs: Any
    ) -> list[float | None]:
        truths = kwargs.get(column)
        if truths is None:
            raise KeyError(f"the dataset has no {column!r} column for the sandbox reward")

        async def one(completion: Any, truth: Any) -> float | None:
            if truth is None:
                return None
            result = await score(
                sandbox, completion_text(completion), truth, all_or_nothing=all_or_nothing
            )
            return result.score

        try:
            return list(await asyncio.gather(*(one(c, t) for c, t in zip(completions, truths))))
        except SandboxUnavailable:
            if on_unavailable == "raise":
                raise
            return [None] * len(completions)

    reward.__name__ = reward.__qualname__ = name
    return reward


async def sandbox_reward(
    prompts: list[Any], completions: list[Any], **kwargs: Any
) -> list[float | None]:
    """The default reward: fraction of test cases passed, test cases from the
    `ground_truth` column, daemon at `AZR_SANDBOX_SOCKET` or the default socket."""
    return await _default()(prompts, completions, **kwargs)


_default_reward: RewardFunction | None = None


def _default() -> RewardFunction:
    global _default_reward
    if _default_reward is None:
        _default_reward = make_sandbox_reward()
    return _default_reward
