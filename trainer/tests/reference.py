"""Reference computations with transformers, for the trainer's parity tests.

Run by the Rust tests with the reference venv's python (scripts/reference-venv.sh):

    python reference.py --model PATH --ids 1,2,3 --text "..." --greedy 32 --logits-out FILE
    python reference.py --model PATH --tokenize-only TEXTS.json --ids 0 --logits-out -

PATH is a .gguf file (transformers dequantises it) or a Hugging Face directory. Writes the fp32
logits of every prompt position as raw little-endian f32 [T, V] to FILE, and prints one JSON
object: {"hf_ids": tokenization of --text, "greedy": ids of the greedy continuation of --ids,
"shape": [T, V], "chat_text": --chat-user rendered by the chat template}. The greedy loop ignores EOS so that exactly --greedy tokens come back.
"""

import argparse
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--text", default=None)
    ap.add_argument("--greedy", type=int, default=0)
    ap.add_argument("--logits-out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chat-user", default=None, help="also render this user message with the chat template")
    ap.add_argument("--tokenize-only", default=None, help="JSON file with a list of texts: print their ids and exit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if os.path.isdir(args.model):
        kwargs = {}
        location = args.model
    else:
        kwargs = {"gguf_file": os.path.basename(args.model)}
        location = os.path.dirname(os.path.abspath(args.model))
    if args.tokenize_only is not None:
        tok = AutoTokenizer.from_pretrained(location, **kwargs)
        with open(args.tokenize_only) as f:
            texts = json.load(f)
        print(json.dumps([tok(t, add_special_tokens=True)["input_ids"] for t in texts]))
        return

    model = AutoModelForCausalLM.from_pretrained(
        location, dtype=torch.float32, attn_implementation="eager", **kwargs
    )
    model.eval()
    hf_ids = None
    chat_text = None
    tok = None
    if args.text is not None or args.chat_user is not None:
        tok = AutoTokenizer.from_pretrained(location, **kwargs)
    if args.text is not None:
        hf_ids = tok(args.text, add_special_tokens=True)["input_ids"]
    if args.chat_user is not None:
        chat_text = tok.apply_chat_template(
            [{"role": "user", "content": args.chat_user}], tokenize=False, add_generation_prompt=True
        )

    ids = torch.tensor([[int(x) for x in args.ids.split(",")]])
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        logits = out.logits[0].float().contiguous()
        logits.numpy().astype("<f4").tofile(args.logits_out)
        greedy = []
        past = out.past_key_values
        nxt = logits[-1].argmax()
        for _ in range(args.greedy):
            greedy.append(int(nxt))
            step = model(input_ids=nxt.view(1, 1), past_key_values=past, use_cache=True)
            past = step.past_key_values
            nxt = step.logits[0, -1].argmax()
    print(json.dumps({"hf_ids": hf_ids, "chat_text": chat_text, "greedy": greedy, "shape": list(logits.shape)}))


if __name__ == "__main__":
    main()
