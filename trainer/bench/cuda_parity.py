"""Compares `azr-trainer generate --greedy --json` runs with transformers on the same model,
device and dtype: the GPU counterpart of the CPU parity tests (trainer/tests/parity.rs), for a
machine that has PyTorch and transformers but no Rust toolchain (scripts/gpu-check.sh).

    python cuda_parity.py --model DIR --run cuda:f32:OURS.json [--run cpu:f32:OURS.json ...]

Each OURS.json is one `generate --json` output for --prompt-ids. transformers is run teacher-
forced over the prompt and our generated tokens; for every generated position it reports
whether transformers' argmax is our token (the greedy continuations are identical exactly when
every position agrees) and the difference between the two log-probabilities of our token.
Prints one JSON object per run.
"""

import argparse
import json

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-ids", required=True, help="comma-separated prompt token ids")
    ap.add_argument("--run", action="append", required=True, help="DEVICE:DTYPE:FILE")
    a = ap.parse_args()
    prompt = [int(t) for t in a.prompt_ids.split(",")]
    loaded = {}
    for spec in a.run:
        device, dtype, path = spec.split(":", 2)
        with open(path) as f:
            ours = json.load(f)
        key = (device, dtype)
        if key not in loaded:
            loaded.clear()  # one model on the GPU at a time
            if device == "cuda":
                torch.cuda.empty_cache()
            torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
            model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch_dtype)
            loaded[key] = model.to(device).eval()
        model = loaded[key]
        generated = ours["ids"]
        ids = torch.tensor([prompt + generated], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits[0].float()
        # Position p predicts token p + 1: the generated tokens are predicted from len(prompt)-1.
        first = len(prompt) - 1
        logp = logits[first : first + len(generated)].log_softmax(-1)
        target = torch.tensor(generated, device=device)
        theirs_lp = logp.gather(1, target.unsqueeze(1)).squeeze(1).cpu()
        theirs_argmax = logp.argmax(-1).cpu().tolist()
        agree = 0
        for mine, best in zip(generated, theirs_argmax):
            if mine != best:
                break
            agree += 1
        ours_lp = torch.tensor(ours["logprobs"], dtype=torch.float32)
        diff = (ours_lp - theirs_lp).abs()
        print(json.dumps({
            "model": a.model,
            "device": device,
            "dtype": dtype,
            "tokens": len(generated),
            "greedy_prefix_agrees": agree,
            "identical": agree == len(generated),
            "max_abs_logprob_diff": float(diff.max()) if len(generated) else 0.0,
            "mean_abs_logprob_diff": float(diff.mean()) if len(generated) else 0.0,
        }), flush=True)


if __name__ == "__main__":
    main()
