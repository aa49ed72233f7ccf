"""A veRL custom reward function (veRL 0.9's reward loop awaits `async` ones).

In the trainer's config (Hydra overrides; `+` adds a key the schema does not list):

    reward.custom_reward_function.path=pkg://azr_sandbox.verl
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.sandbox_socket=/run/azr-sandbox/sandbox.sock

Every node of the Ray cluster runs its own daemon at that path; the reward workers of a node
score against it. Without `sandbox_socket`, `AZR_SANDBOX_SOCKET` or the default socket is
used. The top-level `custom_reward_function.*` keys of older veRL docs are ignored by
veRL 0.9's `main_ppo`: use the `reward.` ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .client import AsyncSandbox, SandboxUnavailable
from .rewards import Score, score

_sandboxes: dict[str | None, AsyncSandbox] = {}


def _sandbox(socket: str | None) -> AsyncSandbox:
    if socket not in _sandboxes:
        sockets = [s.strip() for s in socket.split(",")] if socket else None
        _sandboxes[socket] = AsyncSandbox(sockets)
    return _sandboxes[socket]


async def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | Mapping[str, Any],
    extra_info: Mapping[str, Any] | None = None,
    *,
    sandbox_socket: str | None = None,
    all_or_nothing: bool = False,
    on_unavailable: str = "raise",
    **kwargs: Any,
) -> dict[str, Any]:
    """veRL's custom reward signature. Returns `{"score": ...}` plus fields veRL logs as
    `reward_extra_info` (the same keys for every completion): `verdict`, `passed_cases`,
    `total_cases`, `sandbox_ms`, `task`.

    `ground_truth` is veRL's test-case JSON (`inputs`/`outputs`, optional `fn_name`,
    `assert_case`), a HumanEval-style `test` + `entry_point`, or an AZR task (see
    `azr_sandbox.rewards`). A completion scores the fraction of its cases passed (veRL's
    SandboxFusion rule), or 1/0 with `all_or_nothing`. When no daemon answers, the call raises
    `SandboxUnavailable`; with `on_unavailable="zero"` it scores 0 with verdict
    `unavailable` instead.
    """
    if on_unavailable not in ("raise", "zero"):
        raise ValueError(f"on_unavailable must be 'raise' or 'zero', not {on_unavailable!r}")
    try:
        result = await score(
            _sandbox(sandbox_socket), solution_str, ground_truth, all_or_nothing=all_or_nothing
        )
    except SandboxUnavailable:
        if on_unavailable == "raise":
            raise
        result = Score(0.0, "unavailable", 0, 0, 0.0, "unknown")
    return result.as_dict()
