"""The measurements of `azr-trainer bench` (src/bench.rs), taken with transformers in eager
PyTorch mode on the same model, device, dtype (fp32 on CPU) and thread count, for comparison.
Run with the reference venv (scripts/reference-venv.sh).

Two modes:

    python bench/reference.py --model PATH --threads N [--no-train] [--device cuda --dtype bf16]
        takes every measurement `--repeats` times after a warm-up and prints one JSON object
        with the keys `azr-trainer bench` prints;

    python bench/reference.py --model PATH --threads N --serve
        what `azr-trainer bench --compare` drives: prints {"ready": true} once the model is
        loaded, then for each line `prefill`, `decode_b1`, `decode_b8` or `train` read from
        stdin takes that measurement once and prints {"seconds": S}. The two sides then take
        turns measurement by measurement, so both see the same machine: on a shared CPU whose
        speed drifts by tens of percent over minutes, running one side after the other measures
        the drift as much as the code.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def ids(n, offset, vocab):
    rng = max(vocab // 2, 1)
    return [min(100 + ((i * 7919 + offset * 104729) % rng), vocab - 1) for i in range(n)]


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def left_pad(seqs):
    width = max(len(s) for s in seqs)
    input_ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs], device=DEVICE)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=DEVICE)
    return input_ids, mask


def decode(model, prompts, steps):
    """Prefill, then `steps` greedy single-token steps; returns the time of the steps alone."""
    with torch.no_grad():
        input_ids, mask = left_pad(prompts)
        out = model(input_ids=input_ids, attention_mask=mask, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            out = model(input_ids=nxt, attention_mask=mask, past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        nxt.tolist()
        return time.perf_counter() - t


class Bench:
    """One model and the inputs of every measurement; each method takes a measurement once
    and returns its seconds."""

    def __init__(self, model, a):
        self.model, self.a = model, a
        self.vocab = model.config.vocab_size
        self.prompt = torch.tensor([ids(a.prefill_tokens, 0, self.vocab)], device=DEVICE)
        self.short = [ids(16, i + 1, self.vocab) for i in range(8)]
        self.opt = None

    def prefill(self):
        t = time.perf_counter()
        with torch.no_grad():
            self.model(input_ids=self.prompt, use_cache=False, logits_to_keep=1).logits.tolist()
        return time.perf_counter() - t

    def decode_b1(self):
        return decode(self.model, self.short[:1], self.a.decode_tokens)

    def decode_b8(self):
        return decode(self.model, self.short, self.a.decode_tokens)

    def train(self):
        a, model = self.a, self.model
        n, p_len, r_len = a.train_samples, a.train_prompt_tokens, a.train_response_tokens
        if self.opt is None:
            self.opt = torch.optim.AdamW(model.parameters(), lr=1e-7, weight_decay=0.0)
            prompts = [ids(p_len, 10 + i, self.vocab) for i in range(n)]
            responses = [ids(r_len, 20 + i, self.vocab) for i in range(n)]
            self.full, self.mask = left_pad([p + r for p, r in zip(prompts, responses)])
            self.resp = torch.tensor(responses, device=DEVICE)
            self.adv = torch.tensor(
                [[1.0 if i % 2 == 0 else -1.0] * r_len for i in range(n)], device=DEVICE
            )
            self.old = torch.full((n, r_len), -1.0, device=DEVICE)
        model.train()
        sync()
        t = time.perf_counter()
        self.opt.zero_grad()
        logits = model(input_ids=self.full, attention_mask=self.mask, use_cache=False).logits
        logp = logits[:, p_len - 1 : p_len - 1 + r_len].float().log_softmax(-1)
        new = logp.gather(2, self.resp.unsqueeze(2)).squeeze(2)
        ratio = (new - self.old).exp()
        adv = self.adv
        loss = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).sum() / (n * r_len)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad()
        sync()
        elapsed = time.perf_counter() - t
        model.eval()
        return elapsed


def load(a):
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    if os.path.isdir(a.model):
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(a.model)),
            gguf_file=os.path.basename(a.model),
            dtype=dtype,
        )
    return model.to(DEVICE).eval()


def serve(bench):
    measures = {
        "prefill": bench.prefill,
        "decode_b1": bench.decode_b1,
        "decode_b8": bench.decode_b8,
        "train": bench.train,
    }
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        if name not in measures:
            print(json.dumps({"error": f"unknown measurement {name!r}"}), flush=True)
            continue
        sync()
        print(json.dumps({"seconds": measures[name]()}), flush=True)


def once(bench, a):
    def median(f):
        f()  # warm-up: first-call allocations, lazy initialisation, kernel selection
        return statistics.median(f() for _ in range(a.repeats))

    print(json.dumps({
        "prefill_tokens_per_s": a.prefill_tokens / median(bench.prefill),
        "decode_b1_tokens_per_s": a.decode_tokens / median(bench.decode_b1),
        "decode_b8_tokens_per_s": 8 * a.decode_tokens / median(bench.decode_b8),
        "train_step_s": None if a.no_train else median(bench.train),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--prefill-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--train-samples", type=int, default=4)
    ap.add_argument("--train-prompt-tokens", type=int, default=64)
    ap.add_argument("--train-response-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    global DEVICE
    DEVICE = torch.device(a.device)
    bench = Bench(load(a), a)
    if a.serve:
        serve(bench)
    else:
        once(bench, a)


if __name__ == "__main__":
    main()
