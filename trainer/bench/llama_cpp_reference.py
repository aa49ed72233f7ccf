"""The measurements of `azr-trainer bench` taken with llama.cpp (through llama-cpp-python's
bindings of its C API) on the same GGUF file and thread count, for comparison. Run with the
venv scripts/llama-cpp-venv.sh makes (llama.cpp built from source for this CPU).

    python bench/llama_cpp_reference.py --model FILE.gguf --threads N --serve

is what `azr-trainer bench --compare-llama-cpp` drives: prints {"ready": true} once the model
is loaded, then for each line `prefill`, `decode_b1` or `decode_b8` read from stdin takes that
measurement once and prints {"seconds": S} (`train` gets {"error": ...}: llama.cpp does not
train). The inputs are the token ids `bench` and bench/reference.py use.

Decoding is greedy through `llama_decode` with one sequence per prompt in a batch (as
llama.cpp's own batched example does), the argmax taken from the logits of the last position
of each sequence; llama.cpp's weights are those of the GGUF file as they are (its quantised
types), which is what a llama.cpp user runs.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time

import llama_cpp
import numpy as np

PREFILL_TOKENS = 128
DECODE_TOKENS = 32
PROMPT_TOKENS = 16
BATCH = 8


def ids(n: int, offset: int, vocab: int) -> list[int]:
    rng = max(vocab // 2, 1)
    return [min(100 + ((i * 7919 + offset * 104729) % rng), vocab - 1) for i in range(n)]


@llama_cpp.llama_log_callback
def _quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's log lines would interleave with the replies' diagnostics; drop them."""


class Bench:
    def __init__(self, model_path: str, threads: int) -> None:
        llama_cpp.llama_log_set(_quiet, ctypes.c_void_p())
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        self.model = llama_cpp.llama_model_load_from_file(model_path.encode(), mparams)
        if not self.model:
            raise SystemExit(f"llama.cpp could not load {model_path}")
        vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = 1024
        cparams.n_batch = 512
        cparams.n_ubatch = 512
        cparams.n_seq_max = BATCH
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        # One cache for every sequence (otherwise n_ctx is split between them).
        cparams.kv_unified = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise SystemExit("llama.cpp could not create a context")
        self.batch = llama_cpp.llama_batch_init(512, 0, BATCH)
        self.prompt = ids(PREFILL_TOKENS, 0, self.vocab)
        self.short = [ids(PROMPT_TOKENS, i + 1, self.vocab) for i in range(BATCH)]

    def _clear(self) -> None:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) entries."""
        b = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            b.token[i] = token
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        b.n_tokens = len(entries)
        rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def _argmax(self, i: int) -> int:
        row = llama_cpp.llama_get_logits_ith(self.ctx, i)
        return int(np.ctypeslib.as_array(row, shape=(self.vocab,)).argmax())

    def prefill(self) -> float:
        self._clear()
        t = time.perf_counter()
        last = len(self.prompt) - 1
        self._decode([(tok, p, 0, p == last) for p, tok in enumerate(self.prompt)])
        self._argmax(last)
        return time.perf_counter() - t

    def _decode_steps(self, prompts: list[list[int]]) -> float:
        """Prefill of every prompt (one sequence each), then DECODE_TOKENS greedy steps of one
        token per sequence; the seconds of the steps alone."""
        self._clear()
        entries, last_rows = [], []
        for s, prompt in enumerate(prompts):
            for p, tok in enumerate(prompt):
                entries.append((tok, p, s, p == len(prompt) - 1))
            last_rows.append(len(entries) - 1)
        self._decode(entries)
        nxt = [self._argmax(r) for r in last_rows]
        pos = [len(p) for p in prompts]
        t = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            self._decode([(nxt[s], pos[s], s, True) for s in range(len(prompts))])
            nxt = [self._argmax(s) for s in range(len(prompts))]
            pos = [p + 1 for p in pos]
        return time.perf_counter() - t

    def decode_b1(self) -> float:
        return self._decode_steps(self.short[:1])

    def decode_b8(self) -> float:
        return self._decode_steps(self.short)


def serve(bench: Bench) -> None:
    measures = {
        "prefill": bench.prefill,
        "decode_b1": bench.decode_b1,
        "decode_b8": bench.decode_b8,
    }
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        if name not in measures:
            print(json.dumps({"error": f"no {name!r} measurement in llama.cpp"}), flush=True)
            continue
        print(json.dumps({"seconds": measures[name]()}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a .gguf file")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--serve", action="store_true", required=True)
    a = ap.parse_args()
    serve(Bench(a.model, a.threads))


if __name__ == "__main__":
    main()
