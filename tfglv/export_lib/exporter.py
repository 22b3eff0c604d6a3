"""The export of one training run: what `export/main.py` runs.

    <export_dir>/<model_name>/<version>/
        saved_model.pb, variables/         the SavedModel (TF Serving)
        assets.extra/tf_serving_warmup_requests
        requests/<signature>.json          REST :predict bodies
        tflite/<model_name>_<variant>_batch<N>.tflite
        export_info.json                   provenance, specs, TF Lite report

Before the version is published, the written SavedModel is reloaded and
every example request is run through it; `decode(encode(x)) == x` must hold
exactly, and each TF Lite variant is compared with the SavedModel
(float32 must stay within 1 grey level).
"""

import dataclasses
import json
import math
import os
import tempfile
from typing import Dict, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv import rundir
from tfglv.data import synthetic
from tfglv.export_lib import requests as requests_lib
from tfglv.export_lib import saved_model as saved_model_lib
from tfglv.export_lib import signatures as signatures_lib
from tfglv.export_lib import tflite
from tfglv.export_lib import warmup

INFO_FILE = "export_info.json"
REQUESTS_DIR = "requests"
TFLITE_DIR = "tflite"
# Float32 TF Lite may flip a pixel across a bin boundary, no more.
MAX_FLOAT32_PIXEL_ERROR = 1
_PARITY_EXAMPLES = 8


@dataclasses.dataclass
class ExportResult:
  """Where an export went and what its checks measured."""
  saved_model_dir: str
  version: int
  step: int
  request_files: Dict[str, str]
  tflite_files: Dict[str, str]
  # {variant: {"size_bytes", "decode": {max/mean_pixel_error}, "sample": ...}}
  tflite_report: Dict[str, Dict]


def export_from_workdir(workdir: str, export_dir: str,
                        model_name: str = "tfglv",
                        version: Optional[int] = None,
                        tflite_variants: Sequence[str] = (),
                        tflite_batch_size: int = 1,
                        checkpoint: Optional[str] = None) -> ExportResult:
  """Exports the latest (or given) checkpoint of `workdir`.

  Raises:
    ValueError: bad arguments, an existing version, or a workdir without a
      matching checkpoint (nothing is written then).
    RuntimeError: the written model failed its self-check (nothing is
      published).
  """
  tflite_variants = tflite.check_variants(tflite_variants)
  if tflite_batch_size < 1:
    raise ValueError(f"tflite_batch_size must be >= 1; got "
                     f"{tflite_batch_size}.")
  # Fails early on a taken or bad version (the reservation checks again).
  saved_model_lib.version_directory(export_dir, model_name, version)
  # The latest unless given; a trainer still running may rotate it away
  # while it is read, and then the newest is read (rundir.restore_checkpoint).
  config, model, step, checkpoint = rundir.restore_checkpoint(workdir,
                                                               checkpoint)
  with saved_model_lib.reserve_version(export_dir, model_name,
                                       version) as (final_dir, staging):
    request_files, tflite_files, report = export_model(
        model, staging, model_name, tflite_variants, tflite_batch_size)
    info = {
        "model_name": model_name,
        "version": int(os.path.basename(final_dir)),
        "workdir": os.path.abspath(workdir),
        "checkpoint": checkpoint,
        "step": step,
        "tensorflow_version": tf.__version__,
        "serving_default": signatures_lib.SERVING_DEFAULT,
        "signatures": describe_signatures(config.model),
        "tflite": {"batch_size": tflite_batch_size, "variants": {
            variant: {"file": os.path.basename(tflite_files[variant]),
                      **report[variant]} for variant in tflite_variants}},
        "config": configs.to_dict(config),
    }
    with open(os.path.join(staging, INFO_FILE), "w") as f:
      json.dump(info, f, indent=2)

  def published(paths):
    return {key: os.path.join(final_dir, os.path.relpath(path, staging))
            for key, path in paths.items()}

  return ExportResult(final_dir, info["version"], step,
                      published(request_files), published(tflite_files),
                      report)


def export_model(model, path: str, model_name: str,
                 tflite_variants: Sequence[str] = (),
                 tflite_batch_size: int = 1):
  """Writes the SavedModel, warmup, requests and TF Lite files into `path`.

  Returns ({signature: request file}, {variant: tflite file},
  {variant: report}).
  """
  config = model.config
  saved_model_lib.write_saved_model(model, path)
  examples = requests_lib.example_inputs(config)
  warmup.write_warmup_requests(path, model_name, examples)
  request_files = requests_lib.write_rest_bodies(
      os.path.join(path, REQUESTS_DIR), config)
  loaded = tf.saved_model.load(path)
  check_examples(loaded, examples)
  tflite_files, report = {}, {}
  if tflite_variants:
    with tempfile.TemporaryDirectory() as scratch:
      tflite_files = tflite.write_variants(
          model, os.path.join(path, TFLITE_DIR), model_name, tflite_variants,
          tflite_batch_size, scratch)
    report = tflite_report(loaded, config, tflite_files, tflite_batch_size)
  return request_files, tflite_files, report


def run_signature(loaded, name: str, inputs) -> Dict[str, np.ndarray]:
  outputs = loaded.signatures[name](
      **{key: tf.constant(value) for key, value in inputs.items()})
  return {key: value.numpy() for key, value in outputs.items()}


def check_examples(loaded, examples) -> None:
  """Runs every example request; decode(encode(x)) must equal x exactly."""
  for name, inputs in examples.items():
    run_signature(loaded, name, inputs)
  images = examples["encode"]["images"]
  encoded = run_signature(loaded, "encode", {"images": images})
  decoded = run_signature(loaded, "decode", {"z": encoded["z"],
                                             "v": encoded["v"]})["images"]
  if not np.array_equal(decoded, images):
    raise RuntimeError(
        "The exported decode(encode(x)) differs from x in "
        f"{int(np.sum(decoded != images))} values; the SavedModel is not "
        "invertible (is the 1x1-conv inverse cache stale?).")


def parity_inputs(loaded, config, batch_size: int, seed: int = 0):
  """{signature: inputs} for TF Lite parity, a multiple of `batch_size`."""
  count = batch_size * math.ceil(_PARITY_EXAMPLES / batch_size)
  images = synthetic.generate(count, config.image_size, config.channels,
                              seed=seed + 1)["image"]
  encoded = run_signature(loaded, "encode", {"images": images})
  rng = np.random.default_rng(seed)
  d_z = signatures_lib.latent_dim(config)
  return {
      "decode": {"z": encoded["z"], "v": encoded["v"]},
      "sample": {
          "z_noise": rng.standard_normal((count, d_z)).astype(np.float32),
          "v_noise": rng.standard_normal(
              (count, *config.image_shape)).astype(np.float32),
          "temperature": np.float32(0.7)},
  }


def tflite_report(loaded, config, tflite_files: Dict[str, str],
                  batch_size: int) -> Dict[str, Dict]:
  """Size and pixel errors against the SavedModel, per variant."""
  inputs = parity_inputs(loaded, config, batch_size)
  batched = {"decode": ("z", "v"), "sample": ("z_noise", "v_noise")}

  def reference(signature, batch):
    return run_signature(loaded, signature, batch)["images"]

  report = {}
  for variant, path in tflite_files.items():
    with open(path, "rb") as f:
      runner = tflite.Runner(f.read())
    report[variant] = {"size_bytes": os.path.getsize(path)}
    for signature in tflite.SIGNATURES:
      report[variant][signature] = tflite.pixel_errors(
          reference, runner, signature,
          tflite.batches(inputs[signature], batch_size, batched[signature]))
    logging.info("TF Lite %s: %s", variant, report[variant])
  float32 = report.get("float32")
  if float32 and max(float32[s]["max_pixel_error"]
                     for s in tflite.SIGNATURES) > MAX_FLOAT32_PIXEL_ERROR:
    raise RuntimeError(
        f"TF Lite float32 differs from the SavedModel by more than "
        f"{MAX_FLOAT32_PIXEL_ERROR} grey level: {float32}.")
  return report


def describe_signatures(config: configs.ModelConfig
                        ) -> Dict[str, Dict[str, Dict[str, str]]]:
  """{signature: {"inputs": {name: "dtype [shape]"}, "outputs": {...}}}."""
  return {name: {"inputs": {k: spec.describe_input(k) for k in spec.inputs},
                 "outputs": {k: spec.describe_output(k)
                             for k in spec.outputs}}
          for name, spec in signatures_lib.signature_specs(config).items()}


def format_report(result: ExportResult) -> str:
  """A short human-readable summary for the command line."""
  lines = [f"SavedModel: {result.saved_model_dir} (version {result.version}, "
           f"step {result.step})"]
  for variant, path in result.tflite_files.items():
    entry = result.tflite_report[variant]
    errors = ", ".join(
        f"{s} max {entry[s]['max_pixel_error']} mean "
        f"{entry[s]['mean_pixel_error']:.4f}" for s in tflite.SIGNATURES)
    lines.append(f"TF Lite {variant}: {path} ({entry['size_bytes']} bytes; "
                 f"pixel error vs SavedModel: {errors})")
  return "\n".join(lines)
