"""The measurements of `azr-trainer bench` (src/bench.rs), taken with transformers in eager
PyTorch mode on the same model, device, dtype (fp32 on CPU) and thread count, for comparison. Prints one JSON
object with the same keys. Run with the reference venv (scripts/reference-venv.sh):

    python bench/reference.py --model PATH --threads N [--no-train] [--device cuda --dtype bf16]
"""

import argparse
import json
import os
import statistics
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


def timed(repeats, f):
    f()
    sync()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        sync()
        out.append(time.perf_counter() - t)
    return out


def decode(model, prompts, steps):
    with torch.no_grad():
        input_ids, mask = left_pad(prompts)
        out = model(input_ids=input_ids, attention_mask=mask, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        t = time.perf_counter()
        for _ in range(steps):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            out = model(input_ids=nxt, attention_mask=mask, past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        nxt.tolist()
        return time.perf_counter() - t


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
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    global DEVICE
    DEVICE = torch.device(a.device)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    if os.path.isdir(a.model):
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            os.path.dirname(os.path.abspath(a.model)),
            gguf_file=os.path.basename(a.model),
            dtype=dtype,
        )
    model.to(DEVICE)
    model.eval()
    vocab = model.config.vocab_size

    prompt = torch.tensor([ids(a.prefill_tokens, 0, vocab)], device=DEVICE)

    def prefill():
        with torch.no_grad():
            model(input_ids=prompt, use_cache=False, logits_to_keep=1).logits.tolist()

    prefill_t = timed(a.repeats, prefill)
    short = [ids(16, i + 1, vocab) for i in range(8)]
    b1, b8 = [], []
    timed(a.repeats, lambda: b1.append(decode(model, short[:1], a.decode_tokens)))
    timed(a.repeats, lambda: b8.append(decode(model, short, a.decode_tokens)))
    b1, b8 = b1[1:], b8[1:]

    train_step = None
    if not a.no_train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-7, weight_decay=0.0)
        n, p_len, r_len = a.train_samples, a.train_prompt_tokens, a.train_response_tokens
        prompts = [ids(p_len, 10 + i, vocab) for i in range(n)]
        responses = [ids(r_len, 20 + i, vocab) for i in range(n)]
        full, mask = left_pad([p + r for p, r in zip(prompts, responses)])
        resp = torch.tensor(responses, device=DEVICE)
        adv = torch.tensor([[1.0 if i % 2 == 0 else -1.0] * r_len for i in range(n)], device=DEVICE)
        old = torch.full((n, r_len), -1.0, device=DEVICE)

        def step():
            opt.zero_grad()
            logits = model(input_ids=full, attention_mask=mask, use_cache=False).logits
            logp = logits[:, p_len - 1 : p_len - 1 + r_len].float().log_softmax(-1)
            new = logp.gather(2, resp.unsqueeze(2)).squeeze(2)
            ratio = (new - old).exp()
            loss = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).sum() / (n * r_len)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()

        train_step = statistics.median(timed(a.repeats, step))

    print(json.dumps({
        "prefill_tokens_per_s": a.prefill_tokens / statistics.median(prefill_t),
        "decode_b1_tokens_per_s": a.decode_tokens / statistics.median(b1),
        "decode_b8_tokens_per_s": 8 * a.decode_tokens / statistics.median(b8),
        "train_step_s": train_step,
    }))


if __name__ == "__main__":
    main()
