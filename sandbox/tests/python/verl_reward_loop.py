"""veRL's own reward loop scoring with `azr_sandbox.verl.compute_score` through a real daemon:
the config keys a veRL user sets, veRL's loader (`load_reward_manager`) and its `naive`
reward-loop manager on a `DataProto` batch, as veRL 0.9's reward workers run it (without
Ray: `run_single` per sample, concurrently on one loop).

    verl_reward_loop.py SOCKET
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import tiny_model


def batch(tok: Any, rows: list[tuple[str, str]]) -> Any:
    import numpy as np
    import torch
    from verl import DataProto

    prompt_ids = tok("Write the program.", return_tensors="pt")["input_ids"][0]
    encoded = [tok(text)["input_ids"] for text, _ in rows]
    width = max(len(e) for e in encoded)
    responses = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), len(prompt_ids) + width), dtype=torch.long)
    for i, ids in enumerate(encoded):
        responses[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(prompt_ids) + len(ids)] = 1
    return DataProto.from_dict(
        tensors={
            "prompts": prompt_ids.repeat(len(rows), 1),
            "responses": responses,
            "attention_mask": mask,
        },
        non_tensors={
            "data_source": np.array(["code"] * len(rows), dtype=object),
            "reward_model": np.array([{"ground_truth": g} for _, g in rows], dtype=object),
            "extra_info": np.array([{"index": i} for i in range(len(rows))], dtype=object),
        },
    )


async def score(socket: str) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import load_reward_manager

    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://azr_sandbox.verl",
                    "name": "compute_score",
                    "reward_kwargs": {"sandbox_socket": socket},
                },
                "reward_manager": {"source": "register", "name": "naive"},
                "sandbox_fusion": {"url": None},
            }
        }
    )
    tok = tiny_model.tokenizer()
    stdio = json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]})
    fn = json.dumps({"fn_name": "add", "inputs": ["1\n2", "[1]\n[2]"], "outputs": ["3", "[1, 2]"]})
    rows = [
        ("```python\na, b = map(int, input().split())\nprint(a + b)\n```", stdio),
        ("```python\nprint(3)\n```", stdio),
        ("```python\ndef add(a, b):\n    return a + b\n```", fn),
        ("no code", fn),
    ]
    data = batch(tok, rows)
    # veRL's manager keeps the loop it was made on: make it inside the running loop.
    manager = load_reward_manager(config, tok)
    results = await asyncio.gather(*(manager.run_single(data[i : i + 1]) for i in range(len(data))))
    scores = type(manager).assemble_rm_scores(data, [r["reward_score"] for r in results])
    return {
        "manager": type(manager).__name__,
        "async": bool(getattr(manager, "is_async_reward_score", False)),
        "scores": [r["reward_score"] for r in results],
        "verdicts": [r["reward_extra_info"]["verdict"] for r in results],
        # The tensor veRL's trainer takes: each score at its response's last token.
        "token_level_sum": [float(x) for x in scores.sum(-1)],
    }


def main() -> None:
    print(json.dumps(asyncio.run(score(sys.argv[1]))))


if __name__ == "__main__":
    main()
