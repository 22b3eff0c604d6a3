"""Decode and sample latency: eager, the model's call, tf.function,
SavedModel and TF Lite.

    python -m bench.latency --sizes=small --batch_sizes=1,16

"decode" maps (z, v) to uint8 images; "sample" maps noise (eps_z, eps_v)
through the prior's inverse to z and decodes temperature * eps_v (the
random draw itself stays outside, so that every backend runs the same
deterministic graph and TF Lite needs no random ops). "eager" runs op by
op (`model.run_eagerly = True`); "model call" is what a user writes,
`model.decode(z, v)` and `model.decode(*model.latents_from_noise(...))`,
which tfglv compiles (`tfglv.compiled`). The model runs with
`set_inference_cache(True)`: the 1x1 convolutions read W^-1 and log|det W|
from variables, as an export does. The SavedModel is a
`keras.export.ExportArchive` with fixed-shape endpoints; the TF Lite model
is converted from the same concrete function with builtin ops only and run
by `ai_edge_litert`. Each figure is the median of `--repeats` calls after
two warm-up calls, the backends taking turns call by call (a change in the
machine's load reaches them alike), and every backend is checked to return
the same images. Images per CPU-second (process user + system time) stand
next to images per second, and speed ratios are of CPU-seconds: the load
of other processes stretches wall time, hardly CPU time.
"""

import os
import tempfile

from absl import app
from absl import flags

from bench import harness  # pylint: disable=g-bad-import-order
import keras
import numpy as np
import tensorflow as tf

from tfglv import _compat


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_list("sizes", ["small"], "Model sizes.")
  flags.DEFINE_enum("variant", "glvae", ["glvae", "glow"], "Model variant.")
  flags.DEFINE_list("batch_sizes", ["1", "16"], "Batch sizes.")
  flags.DEFINE_integer("repeats", 5, "Timed calls per figure (median).")
  flags.DEFINE_float("temperature", 0.7, "Sampling temperature.")
  flags.DEFINE_string("npz", "", harness.npz_help())


FLAGS = flags.FLAGS


def _functions(model, temperature):
  """The decode and sample computations, as plain callables."""

  def decode(z, v):
    return model.decode(z, v)

  def sample(epsilon_z, epsilon_v):
    return model.decode(*model.latents_from_noise(epsilon_z, epsilon_v,
                                                  temperature))

  return {"decode": decode, "sample": sample}


def _specs(model, batch):
  h, w, c = model.config.image_shape
  return [tf.TensorSpec([batch, model.latent_dim], tf.float32),
          tf.TensorSpec([batch, h, w, c], tf.float32)]


def _tflite_runner(concrete, model):
  """(run(inputs) -> uint8 images, model bytes) of a builtins-only model."""
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  # The converter would keep resource variables (READ_VARIABLE ops that
  # read uninitialised memory unless an initializer signature runs first):
  # freeze them into constants.
  frozen = _compat.freeze_variables(concrete)
  converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen],
                                                              model)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  flatbuffer = converter.convert()
  interpreter = litert.Interpreter(model_content=flatbuffer, num_threads=2)
  interpreter.allocate_tensors()
  inputs = interpreter.get_input_details()
  output = interpreter.get_output_details()[0]
  # The converter names inputs "serving_default_<argument>:0".
  names = [a.name for a in frozen.inputs if a.dtype != tf.resource]
  index_of = {d["name"].split("serving_default_")[-1].split(":")[0]:
              d["index"] for d in inputs}
  order = [index_of[n.split(":")[0]] for n in names]

  def run(*arrays):
    for index, array in zip(order, arrays):
      interpreter.set_tensor(index, np.asarray(array))
    interpreter.invoke()
    return interpreter.get_tensor(output["index"])

  return run, len(flatbuffer)


def _eager(model, fn):
  """`fn` run op by op: tfglv compiles the model's calls unless told not to."""

  def call(*args):
    model.run_eagerly = True
    try:
      return fn(*args)
    finally:
      model.run_eagerly = False

  return call


def _time(backends, repeats, eager_repeats):
  """{backend: (median Timing, images)} of `backends` ({name: (call,
  args)}), timed in turns (one call of each per round), so that a change in
  the machine's load reaches every backend alike."""
  images = {}
  for name, (call, args) in backends.items():
    # Two warm-up calls: tfglv compiles a model call on its second.
    np.asarray(call(*args))
    images[name] = np.asarray(call(*args))
  times = harness.time_in_turns(
      {name: lambda call=call, args=args: np.asarray(call(*args))
       for name, (call, args) in backends.items()},
      rounds=repeats, warmup=0, rounds_of={"eager": eager_repeats})
  return {name: (harness.median_timing(times[name]), images[name])
          for name in backends}


def run_size(size):
  model = harness.build_tfglv(size, FLAGS.variant,
                              init_images=harness.load_images(
                                  64, npz=FLAGS.npz))
  model.set_inference_cache(True)
  functions = _functions(model, FLAGS.temperature)
  export_dir = tempfile.mkdtemp(prefix="tfglv_latency_")
  rows = []
  for batch in [int(b) for b in FLAGS.batch_sizes]:
    specs = _specs(model, batch)
    rng = np.random.RandomState(batch)
    args = [rng.standard_normal(s.shape).astype(np.float32) for s in specs]
    archive = keras.export.ExportArchive()
    archive.track(model)
    compiled = {}
    for name, fn in functions.items():
      compiled[name] = tf.function(fn, input_signature=specs)
      archive.add_endpoint(name=name, fn=compiled[name])
    path = os.path.join(export_dir, f"b{batch}")
    archive.write_out(path, verbose=False)
    loaded = tf.saved_model.load(path)
    for name, fn in functions.items():
      backends = {
          "eager": _eager(model, fn),
          "model call": fn,
          "tf.function": compiled[name],
          "SavedModel": getattr(loaded, name),
      }
      try:
        backends["TF Lite"], _ = _tflite_runner(
            compiled[name].get_concrete_function(), model)
      except Exception as error:  # pylint: disable=broad-except
        print(f"TF Lite conversion of {name} failed: {error}")
      tensors = [tf.constant(a) for a in args]
      timed = _time(
          {backend: (call, args if backend == "TF Lite" else tensors)
           for backend, call in backends.items()},
          FLAGS.repeats, 1 if size == "full" else FLAGS.repeats)
      reference = timed["eager"][1]
      figures = {backend: (timing, float(np.mean(images != reference)))
                 for backend, (timing, images) in timed.items()}
      saved = figures["SavedModel"][0]
      for backend, (timing, mismatch) in figures.items():
        rows.append((size, name, batch, backend, f"{1e3 * timing.wall:.1f}",
                     *harness.speed_cells(batch, timing),
                     f"{saved.cpu / timing.cpu:.2f}x",
                     f"{100 * mismatch:.2f}"))
  harness.print_table(
      f"Latency ({FLAGS.variant}, inference cache on, median of "
      f"{FLAGS.repeats}); {harness.load_average()}",
      ("size", "endpoint", "batch", "backend", "ms/call",
       *harness.SPEED_COLUMNS, "speed vs SavedModel (CPU-s)",
       "% pixels differing from eager"), rows)


def main(argv):
  del argv
  for size in FLAGS.sizes:
    run_size(size)


if __name__ == "__main__":
  define_flags()
  app.run(main)
