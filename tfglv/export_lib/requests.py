"""Example inputs for every signature, and TF Serving REST `:predict` bodies.

The same inputs feed the warmup records, the REST bodies written next to the
SavedModel (`<version>/requests/<signature>.json`) and the gRPC client, so a
test that runs the bodies through TF's loader checks all three.

A REST body uses the columnar ("inputs") format, which allows inputs of
different leading sizes and scalars:

    {"signature_name": "decode", "inputs": {"z": [[...]], "v": [[[[...]]]]}}

TF Serving converts the JSON numbers to the signature's dtypes;
`inputs_from_rest_body` does the same.
"""

import json
import os
from typing import Dict, Mapping

import numpy as np

from tfglv import configs
from tfglv.data import synthetic
from tfglv.export_lib import signatures as signatures_lib

Inputs = Dict[str, np.ndarray]
# Decimals kept in float request values: short JSON, same float32 values.
_DECIMALS = 4


def example_inputs(config: configs.ModelConfig, batch_size: int = 1,
                   seed: int = 0) -> Dict[str, Inputs]:
  """{signature: {input name: array}}, deterministic given the arguments.

  Images come from the embedded synthetic dataset, noise from a seeded
  normal; every array has its spec's dtype and N = `batch_size`.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
  specs = signatures_lib.signature_specs(config)
  height, width, channels = config.image_shape
  d_z = signatures_lib.latent_dim(config)
  rng = np.random.default_rng(seed)
  pictures = synthetic.generate(2 * batch_size, config.image_size,
                                channels, seed=seed)["image"]
  first, second = pictures[:batch_size], pictures[batch_size:]

  def normal(*shape, scale=1.0):
    return np.round(scale * rng.standard_normal(shape), _DECIMALS)

  fractions = np.array([0.0, 0.5, 1.0])
  values = {
      "encode": {"images": first},
      "decode": {"z": normal(batch_size, d_z),
                 "v": normal(batch_size, height, width, channels, scale=0.7)},
      "sample": {"z_noise": normal(batch_size, d_z),
                 "v_noise": normal(batch_size, height, width, channels),
                 "temperature": np.array(0.7)},
      "sample_from_seed": {"seed": np.array([0, 42]),
                           "num_samples": np.array(batch_size),
                           "temperature": np.array(0.7)},
      "switch": {"global_images": first, "local_images": second},
      "interpolate": {"images_start": first, "images_end": second,
                      "z_fractions": fractions, "v_fractions": fractions},
  }
  return {name: {key: np.asarray(value,
                                 specs[name].inputs[key].dtype.as_numpy_dtype)
                 for key, value in inputs.items()}
          for name, inputs in values.items()}


def rest_body(signature_name: str, inputs: Mapping[str, np.ndarray]) -> Dict:
  """The JSON body of a REST `:predict` call (columnar "inputs" format)."""

  def to_json(array):
    array = np.asarray(array)
    if array.dtype.kind == "f":
      array = np.round(array.astype(np.float64), _DECIMALS)
    return array.tolist()

  return {"signature_name": signature_name,
          "inputs": {name: to_json(value) for name, value in inputs.items()}}


def inputs_from_rest_body(body: Mapping, config: configs.ModelConfig) -> Inputs:
  """Arrays of a REST body, converted to the signature's dtypes."""
  name = body.get("signature_name", "serving_default")
  if name == "serving_default":
    name = signatures_lib.SERVING_DEFAULT
  specs = signatures_lib.signature_specs(config)
  if name not in specs:
    raise ValueError(f"Unknown signature_name {name!r}; allowed: "
                     f"{', '.join(specs)} (or serving_default).")
  if "inputs" not in body:
    raise ValueError("Only the columnar REST format is supported: the body "
                     "needs an 'inputs' object.")
  expected = specs[name].inputs
  unknown = set(body["inputs"]) - set(expected)
  if unknown:
    raise ValueError(f"{name} has no inputs {sorted(unknown)}; expected "
                     f"{', '.join(expected)}.")
  return {key: np.asarray(value, expected[key].dtype.as_numpy_dtype)
          for key, value in body["inputs"].items()}


def write_rest_bodies(directory: str,
                      config: configs.ModelConfig) -> Dict[str, str]:
  """Writes `<directory>/<signature>.json` per signature; returns the paths."""
  os.makedirs(directory, exist_ok=True)
  paths = {}
  for name, inputs in example_inputs(config).items():
    paths[name] = os.path.join(directory, f"{name}.json")
    with open(paths[name], "w") as f:
      json.dump(rest_body(name, inputs), f)
  return paths
