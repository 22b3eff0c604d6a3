"""Compares what two `bench/before_after.sh` outputs show a user.

    python -m bench.compare_runs OUT_A OUT_B

Signature outputs, checkpoint tensors, evaluation JSON/CSV and PNG pixels
must be identical (fields of time and throughput aside, and paths under
OUT_A/OUT_B); log lines are compared without their timestamps and timings.
Prints every difference.
"""

import difflib
import glob
import json
import os
import re
import sys

import numpy as np
from PIL import Image
import tensorflow as tf


def main(argv):
  a, b = argv[1], argv[2]
  problems = []; checked = 0
  A = np.load(os.path.join(a, "signatures.npz")); B = np.load(os.path.join(b, "signatures.npz"))
  assert sorted(A.files) == sorted(B.files), (A.files, B.files)
  for k in A.files:
    checked += 1
    if A[k].shape != B[k].shape or not np.array_equal(A[k], B[k]):
      problems.append(f"signature {k}: max diff {np.max(np.abs(A[k].astype(float)-B[k].astype(float)))}")
  TIME = re.compile(r"(seconds|per_second|wall|time)")
  def strip(o):
    if isinstance(o, dict): return {k: strip(v) for k, v in o.items() if not TIME.search(k)}
    if isinstance(o, list): return [strip(v) for v in o]
    return o
  for f in sorted(glob.glob(os.path.join(a, "run", "**", "*.json"), recursive=True)):
    rel = os.path.relpath(f, a); g = os.path.join(b, rel); checked += 1
    if not os.path.exists(g): problems.append(f"missing {rel}"); continue
    if rel.endswith("config.json"):
      # The layout may differ between versions; the settings may not.
      import tfglv  # pylint: disable=g-import-not-at-top
      if tfglv.configs.from_dict(json.load(open(f))) != tfglv.configs.from_dict(
          json.load(open(g))):
        problems.append(f"config differs: {rel}")
      continue
    ja = json.loads(json.dumps(strip(json.load(open(f)))).replace(a, "<out>"))
    jb = json.loads(json.dumps(strip(json.load(open(g)))).replace(b, "<out>"))
    if ja != jb: problems.append(f"json differs: {rel}")
  for f in sorted(glob.glob(os.path.join(a, "run", "**", "*.png"), recursive=True)):
    rel = os.path.relpath(f, a); g = os.path.join(b, rel); checked += 1
    if not os.path.exists(g): problems.append(f"missing {rel}"); continue
    if not np.array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(g))): problems.append(f"png differs: {rel}")
  for f in sorted(glob.glob(os.path.join(a, "run", "**", "*.csv"), recursive=True)):
    rel = os.path.relpath(f, a); g = os.path.join(b, rel); checked += 1
    if open(f).read() != open(g).read(): problems.append(f"csv differs: {rel}")
  ca = tf.train.latest_checkpoint(os.path.join(a, "run", "checkpoints")); cb = tf.train.latest_checkpoint(os.path.join(b, "run", "checkpoints"))
  ra, rb = tf.train.load_checkpoint(ca), tf.train.load_checkpoint(cb)
  va = dict(tf.train.list_variables(ca)); vb = dict(tf.train.list_variables(cb))
  if set(va) != set(vb): problems.append(f"checkpoint keys differ: {len(set(va)^set(vb))}")
  for k in sorted(set(va) & set(vb)):
    if k.startswith("_CHECKPOINTABLE"): continue
    checked += 1
    x, y = ra.get_tensor(k), rb.get_tensor(k)
    if not np.array_equal(x, y): problems.append(f"checkpoint tensor differs: {k}")
  def lines(path):
    out = []
    for line in open(path, errors="replace"):
      if re.match(r"^[IWE]\d{4} ", line) and "] " in line:
        line = line.split("] ", 1)[1]
      elif re.match(r"^[IWE]0000 00:00", line): continue
      line = re.sub(r"\d+(\.\d+)?\s*(s|ms|min)\b", "<t>", line)
      line = re.sub(r"(images_per_second|ETA|took|in) [\dm.s]+", r"\1 <t>", line)
      line = line.replace(a, "<out>").replace(b, "<out>")
      out.append(line.rstrip())
    return out
  for name in ("train.stderr", "train.stdout", "eval.stdout", "eval.stderr", "export.stdout", "export.stderr"):
    fa, fb = os.path.join(a, name), os.path.join(b, name)
    if not os.path.exists(fa) or not os.path.exists(fb): continue
    la, lb = lines(fa), lines(fb)
    d = [l for l in difflib.unified_diff(la, lb, lineterm="", n=0) if not l.startswith(("---", "+++", "@@"))]
    if d: problems.append(f"{name}: {len(d)} differing lines, e.g. " + " | ".join(d[:6]))
  print(f"checked {checked} items; {len(problems)} differences")
  for p in problems[:40]: print(" -", p)


if __name__ == "__main__":
  main(sys.argv)
