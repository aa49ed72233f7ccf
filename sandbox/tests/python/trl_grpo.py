"""TRL's GRPOTrainer, 2 steps on CPU, a tiny random Qwen2, rewarded by `azr_sandbox.trl`
through a real daemon. Plain and conversational prompts.

    trl_grpo.py SOCKET OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import tiny_model


def train(conversational: bool, out_dir: str) -> dict[str, Any]:
    from azr_sandbox.trl import completion_text, make_sandbox_reward
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    calls: list[list[float | None]] = []
    inner = make_sandbox_reward()

    async def sandbox_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> Any:
        # The random model writes no code block: append one per row, half right, half wrong,
        # so the scores are known and vary within each group.
        texts = [completion_text(c) for c in completions]
        fixed = [
            t
            + (
                "\n```python\nprint(int(input()) * 2)\n```"
                if i % 2 == 0
                else "\n```python\nprint(0)\n```"
            )
            for i, t in enumerate(texts)
        ]
        if conversational:
            fixed = [[{"role": "assistant", "content": t}] for t in fixed]  # type: ignore[misc]
        scores = await inner(prompts, fixed, **kwargs)
        calls.append(scores)
        return scores

    truth = json.dumps({"inputs": ["2\n", "5\n"], "outputs": ["4\n", "10\n"]})
    prompts: list[Any] = [
        "Double a number read from stdin.",
        "Print twice the input.",
    ] * 2
    if conversational:
        prompts = [[{"role": "user", "content": p}] for p in prompts]
    dataset = Dataset.from_dict({"prompt": prompts, "ground_truth": [truth] * len(prompts)})
    tok = tiny_model.tokenizer()
    args = GRPOConfig(
        output_dir=out_dir,
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        gradient_checkpointing=False,
        use_vllm=False,
        learning_rate=1e-3,
        disable_tqdm=True,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=tiny_model.model(tok),
        reward_funcs=sandbox_reward,
        args=args,
        train_dataset=dataset,
        processing_class=tok,
    )
    started = time.monotonic()
    trainer.train()
    steps = [h for h in trainer.state.log_history if "rewards/sandbox_reward/mean" in h]
    return {
        "steps": len(steps),
        "global_step": trainer.state.global_step,
        "reward_means": [h["rewards/sandbox_reward/mean"] for h in steps],
        "calls": calls,
        "seconds": time.monotonic() - started,
    }


def main() -> None:
    os.environ["AZR_SANDBOX_SOCKET"] = sys.argv[1]
    out = sys.argv[2]
    result = {
        "plain": train(False, os.path.join(out, "plain")),
        "conversational": train(True, os.path.join(out, "conversational")),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
