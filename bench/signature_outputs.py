"""Calls every exported signature (SavedModel and TF Lite) on fixed inputs.

    python -m bench.signature_outputs EXPORT_BASE OUT.npz

Inputs come from a seeded NumPy generator, so two exports of the same
weights must give identical arrays (`bench.compare_runs`). Written for the
tiny config's 16x16x3 images.
"""

import glob
import os
import sys

import numpy as np
import tensorflow as tf


def main(argv):
  base, out = argv[1], argv[2]
  sm = sorted(glob.glob(os.path.join(base, "*", "1")) + glob.glob(os.path.join(base, "1")))
  print("savedmodel", sm)
  loaded = tf.saved_model.load(sm[0])
  rng = np.random.default_rng(0)
  sig = loaded.signatures
  res = {}
  imgs = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
  imgs2 = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
  e = sig["encode"](images=tf.constant(imgs))
  for k, v in e.items(): res["encode/" + k] = v.numpy()
  d = sig["decode"](z=e["z"], v=e["v"]);  res["decode/images"] = d["images"].numpy()
  zn = rng.standard_normal((4, e["z"].shape[1])).astype(np.float32)
  vn = rng.standard_normal((4, 16, 16, 3)).astype(np.float32)
  s = sig["sample"](z_noise=tf.constant(zn), v_noise=tf.constant(vn), temperature=tf.constant(0.7))
  res["sample/images"] = s["images"].numpy()
  s = sig["sample_from_seed"](seed=tf.constant([3, 4], tf.int32), num_samples=tf.constant(5), temperature=tf.constant(0.8))
  res["sample_from_seed/images"] = s["images"].numpy()
  s = sig["switch"](global_images=tf.constant(imgs), local_images=tf.constant(imgs2))
  res["switch/images"] = s["images"].numpy()
  s = sig["interpolate"](images_start=tf.constant(imgs[:2]), images_end=tf.constant(imgs2[:2]), z_fractions=tf.constant([0., .5, 1.]), v_fractions=tf.constant([0., .25, 1.]))
  res["interpolate/images"] = s["images"].numpy()
  for f in sorted(glob.glob(os.path.join(base, "**", "*.tflite"), recursive=True)):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=f)
    for name in it.get_signature_list():
      runner = it.get_signature_runner(name)
      ins = {}
      for k, det in runner.get_input_details().items():
        shape = det["shape"]; dt = det["dtype"]
        if dt == np.uint8: ins[k] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        elif np.issubdtype(dt, np.integer): ins[k] = np.ones(shape, dt)
        elif k == "temperature": ins[k] = np.full(shape, 0.9, dt)
        else: ins[k] = rng.standard_normal(shape).astype(dt)
      o = runner(**ins)
      for k, v in o.items(): res[f"tflite/{os.path.basename(f)}/{name}/{k}"] = v
  np.savez(out, **res)
  print({k: v.shape for k, v in res.items()})


if __name__ == "__main__":
  main(sys.argv)
