"""TF Lite files for on-device decoding: `decode` and noise-input `sample`.

TF Lite prefers static shapes, so the batch N is fixed per file (default 1).
Each signature is traced with N fixed, its weights frozen into constants,
and the frozen functions saved as a small SavedModel (a plain `tf.Module`
suffices once nothing is a variable), which is converted with
TFLITE_BUILTINS only: no Select TF ops, no custom ops. The 1x1
convolutions' inverses are the precomputed W^-1 (TF Lite has no
matrix-inverse builtin).

Variants:
  float32        weights and compute in float32.
  float16        weights stored as float16, dequantised at load.
  dynamic_range  weights stored as int8 (dynamic-range quantisation);
                 weights below the converter's size threshold stay float32.

One file per variant, `<model_name>_<variant>_batch<N>.tflite`, each with the
signatures `decode(z, v) -> images` and
`sample(z_noise, v_noise, temperature) -> images`.
"""

import os
from typing import Callable, Dict, Iterable, List, Mapping, Sequence

from ai_edge_litert import interpreter as litert
import numpy as np
import tensorflow as tf

from tfglv import _compat
from tfglv import latents
from tfglv.export_lib import signatures as signatures_lib
from tfglv.flows import shared

VARIANTS = ("float32", "float16", "dynamic_range")
SIGNATURES = ("decode", "sample")


def check_variants(variants: Iterable[str]) -> List[str]:
  variants = list(variants)
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    raise ValueError(f"Unknown TF Lite variants {unknown}; allowed: "
                     f"{', '.join(VARIANTS)}.")
  return variants


def file_name(model_name: str, variant: str, batch_size: int) -> str:
  return f"{model_name}_{variant}_batch{batch_size}.tflite"


def write_static_saved_model(model, path: str, batch_size: int) -> None:
  """The TF Lite signatures, N fixed and weights frozen, as a SavedModel."""
  if batch_size < 1:
    raise ValueError(f"TF Lite batch_size must be >= 1; got {batch_size}.")
  model.set_inference_cache(True)
  functions = signatures_lib.ServingFunctions(model, batch_size,
                                              check_inputs=False)
  exported = {}
  for name in SIGNATURES:
    input_signature = functions.specs[name].input_signature
    # One flat graph: freezing makes nested functions unsavable.
    with shared.inlined():
      concrete = tf.function(functions.function(name),
                             input_signature=input_signature
                             ).get_concrete_function()
    frozen = _compat.freeze_variables(concrete)
    exported[name] = _with_named_outputs(frozen, concrete.structured_outputs,
                                         input_signature)
  # No gradients: the file is only converted (and the frozen graph's custom
  # gradients could not be saved).
  tf.saved_model.save(tf.Module(), path, signatures=exported,
                      options=tf.saved_model.SaveOptions(
                          experimental_custom_gradients=False))


def _with_named_outputs(frozen, structure, input_signature):
  """A frozen function returns a flat list; this restores the output names."""

  def call(*args):
    return tf.nest.pack_sequence_as(structure, frozen(*args))

  return tf.function(call, input_signature=input_signature
                     ).get_concrete_function()


def convert(static_saved_model_dir: str, variant: str) -> bytes:
  """Converts the static SavedModel; builtin ops only, else it raises."""
  check_variants([variant])
  converter = tf.lite.TFLiteConverter.from_saved_model(
      static_saved_model_dir, signature_keys=list(SIGNATURES))
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  if variant in ("float16", "dynamic_range"):
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  if variant == "float16":
    converter.target_spec.supported_types = [tf.float16]
  tflite_model = converter.convert()
  check_builtin_ops_only(tflite_model)
  return tflite_model


def operator_names(tflite_model: bytes) -> List[str]:
  """Sorted distinct operator names; custom ops as 'CUSTOM:<name>'."""
  return sorted(set(_compat.tflite_operator_names(tflite_model)))


def check_builtin_ops_only(tflite_model: bytes) -> None:
  """Raises ValueError on custom/Flex ops or unfrozen (resource) weights."""
  names = operator_names(tflite_model)
  custom = [n for n in names if n.startswith("CUSTOM:")]
  if custom:
    raise ValueError(f"TF Lite model uses non-builtin ops {custom}; only "
                     f"TFLITE_BUILTINS are allowed.")
  variables = _compat.tflite_resource_variable_count(tflite_model)
  if variables or "VAR_HANDLE" in names:
    raise ValueError(f"TF Lite model keeps {variables} resource variables; "
                     f"its weights must be frozen constants.")


class Runner:
  """Runs a TF Lite model's signatures with `ai_edge_litert`, checking the
  inputs first.

  The raw interpreter checks nothing a caller can act on: a wrong shape
  fails inside XNNPack with "failed to reshape runtime", and NaN, inf or
  huge finite values (v = 1e30, temperature = 1e6) come back as all-white
  images without an error. `Runner` raises ValueError instead, naming the
  input and its expected dtype and shape, or the bounds of `latents`
  (codes within +-MAX_LATENT_ABS, temperature in (0, MAX_TEMPERATURE]).
  """

  def __init__(self, tflite_model: bytes, num_threads: int = 1):
    self.interpreter = litert.Interpreter(model_content=tflite_model,
                                          num_threads=num_threads)
    self._runners = {}

  @property
  def signatures(self) -> Dict[str, Dict[str, List[str]]]:
    return self.interpreter.get_signature_list()

  def __call__(self, signature: str, **inputs) -> Dict[str, np.ndarray]:
    if signature not in self._runners:
      if signature not in self.signatures:
        raise ValueError(f"Unknown signature {signature!r}; this model has "
                         f"{', '.join(sorted(self.signatures))}.")
      self._runners[signature] = self.interpreter.get_signature_runner(
          signature)
    runner = self._runners[signature]
    check_inputs(signature, runner.get_input_details(), inputs)
    return runner(**inputs)


def check_inputs(signature: str, details: Mapping[str, Dict],
                 inputs: Mapping[str, np.ndarray]) -> None:
  """ValueError unless `inputs` match the interpreter's input `details`
  (names, dtypes, shapes) and lie within the bounds where the math holds."""
  if set(inputs) != set(details):
    raise ValueError(f"{signature} takes inputs {sorted(details)}; got "
                     f"{sorted(inputs)}.")
  for name, detail in details.items():
    value = np.asarray(inputs[name])
    expected = tuple(int(d) for d in detail["shape"])
    dtype = np.dtype(detail["dtype"])
    if value.dtype != dtype or value.shape != expected:
      raise ValueError(
          f"{signature}: input {name} must be {dtype.name} "
          f"{list(expected)} (this file's batch is fixed at export, "
          f"--tflite_batch_size); got {value.dtype.name} {list(value.shape)}.")
    if dtype.kind != "f":
      continue
    if not np.all(np.isfinite(value)):
      raise ValueError(f"{signature}: input {name} must be finite; it holds "
                       f"NaN or inf.")
    if name == "temperature":
      if not 0 < float(value) <= latents.MAX_TEMPERATURE:
        raise ValueError(f"{signature}: temperature must lie in (0, "
                         f"{latents.MAX_TEMPERATURE:g}]; got {float(value)}.")
    elif np.abs(value).max(initial=0.0) > latents.MAX_LATENT_ABS:
      raise ValueError(f"{signature}: input {name} must lie within "
                       f"+-{latents.MAX_LATENT_ABS:g}; got a value of "
                       f"{np.abs(value).max():g}.")


def batches(inputs: Mapping[str, np.ndarray], batch_size: int,
            batched: Sequence[str]) -> List[Dict[str, np.ndarray]]:
  """Splits the `batched` inputs into full batches; others are repeated."""
  total = len(inputs[batched[0]])
  if total % batch_size:
    raise ValueError(f"{total} examples do not split into batches of "
                     f"{batch_size}.")
  return [{name: (value[start:start + batch_size] if name in batched
                  else value) for name, value in inputs.items()}
          for start in range(0, total, batch_size)]


def pixel_errors(reference: Callable[[str, Dict[str, np.ndarray]], np.ndarray],
                 runner: Runner, signature: str,
                 input_batches: Sequence[Dict[str, np.ndarray]]
                 ) -> Dict[str, float]:
  """Max and mean |TF Lite - reference| in grey levels over all batches."""
  differences = []
  for inputs in input_batches:
    expected = reference(signature, inputs).astype(np.int32)
    actual = runner(signature, **inputs)["images"].astype(np.int32)
    if actual.shape != expected.shape:
      raise ValueError(f"TF Lite {signature} returned shape {actual.shape}; "
                       f"the SavedModel returned {expected.shape}.")
    differences.append(np.abs(actual - expected).ravel())
  differences = np.concatenate(differences)
  return {"max_pixel_error": int(differences.max()),
          "mean_pixel_error": float(differences.mean())}


def write_variants(model, directory: str, model_name: str,
                   variants: Sequence[str], batch_size: int,
                   scratch_dir: str) -> Dict[str, str]:
  """Converts and writes each variant; returns {variant: path}.

  The intermediate static SavedModel goes to `scratch_dir`.
  """
  variants = check_variants(variants)
  static_dir = os.path.join(scratch_dir, "tflite_static_saved_model")
  write_static_saved_model(model, static_dir, batch_size)
  os.makedirs(directory, exist_ok=True)
  paths = {}
  for variant in variants:
    paths[variant] = os.path.join(directory,
                                  file_name(model_name, variant, batch_size))
    with open(paths[variant], "wb") as f:
      f.write(convert(static_dir, variant))
  return paths
