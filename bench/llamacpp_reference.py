#!/usr/bin/env python3
"""Baseline for `cabildo bench generate`: llama.cpp (PyPI `llama-cpp-python`, built from
source by pip) on the same GGUF file and the very same rendered prompt. Usage:

    target/release/cabildo bench generate ../shared/eval/bcn-es --save-prompt /tmp/prompt.txt
    python3 bench/llamacpp_reference.py models/qwen2.5-0.5b/model.gguf /tmp/prompt.txt --max-tokens 64

`--min-tokens N` suppresses the end of turn until N tokens, like `cabildo bench generate
--min-tokens N`, so that decode is timed over the same length in both engines.
"""
import argparse, json, resource, time

import numpy as np

from llama_cpp import Llama

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("prompt")
p.add_argument("--max-tokens", type=int, default=64)
p.add_argument("--min-tokens", type=int, default=0,
               help="keep generating past the end of the answer until this many tokens")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()

llm = Llama(model_path=a.model, n_ctx=4096, n_threads=a.threads, n_batch=512, verbose=False)
prompt = open(a.prompt, encoding="utf-8").read()
tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
# End-of-turn tokens, held back while fewer than --min-tokens are out.
ends = [llm.token_eos(), *llm.tokenize(b"<|im_end|><|endoftext|>", add_bos=False, special=True)]
llm.reset()
t0 = time.perf_counter()
llm.eval(tokens)
first = None
out = []


def hold_end(_ids, logits):
    if len(out) < a.min_tokens:
        logits[ends] = -np.inf
    return logits


for _ in range(a.max_tokens):
    tok = llm.sample(temp=0.0, logits_processor=[hold_end])
    if first is None:
        first = time.perf_counter()
    if tok in ends:
        break
    out.append(tok)
    llm.eval([tok])
end = time.perf_counter()
first = first or end
print(json.dumps({
    "engine": "llama.cpp via llama-cpp-python", "prompt_tokens": len(tokens),
    "completion_tokens": len(out) + 1,
    "time_to_first_token_s": first - t0,
    "prefill_tokens_per_s": len(tokens) / (first - t0),
    "decode_tokens_per_s": max(len(out), 1) / max(end - first, 1e-9),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "answer": llm.detokenize(out).decode("utf-8", "replace"),
}, ensure_ascii=False))
