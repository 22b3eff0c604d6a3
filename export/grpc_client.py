r"""A small gRPC client for the exported model on TF Serving.

Sends one of the REST example bodies (<version>/requests/<signature>.json)
as a gRPC `Predict` call, so both protocols are exercised by the same
inputs, and prints (or saves) the outputs:

  python -m export.grpc_client --server=localhost:8500 --model_name=tfglv \
      --request=/models/tfglv/1/requests/decode.json --output=/tmp/out.npz

Needs only `tensorflow-serving-api` (and the TensorFlow it depends on, for
tensor protos), not tfglv. gRPC, unlike REST, does not convert dtypes: each
input must already have its signature's dtype, given by `INPUT_DTYPES`.
"""

import json
from typing import Dict, Mapping, Optional

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

# The dtype of every input name of every signature (README, "Signatures").
INPUT_DTYPES = {
    "images": tf.uint8,
    "global_images": tf.uint8,
    "local_images": tf.uint8,
    "images_start": tf.uint8,
    "images_end": tf.uint8,
    "z": tf.float32,
    "v": tf.float32,
    "z_noise": tf.float32,
    "v_noise": tf.float32,
    "temperature": tf.float32,
    "z_fractions": tf.float32,
    "v_fractions": tf.float32,
    "seed": tf.int32,
    "num_samples": tf.int32,
}


def predict_request(body: Mapping, model_name: str,
                    version: Optional[int] = None
                    ) -> predict_pb2.PredictRequest:
  """A PredictRequest carrying a REST body's signature and inputs."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = body.get("signature_name",
                                               "serving_default")
  if version is not None:
    request.model_spec.version.value = version
  for name, value in body["inputs"].items():
    if name not in INPUT_DTYPES:
      raise ValueError(f"Unknown input {name!r}; known inputs: "
                       f"{', '.join(sorted(INPUT_DTYPES))}.")
    dtype = INPUT_DTYPES[name]
    request.inputs[name].CopyFrom(
        tf.make_tensor_proto(np.asarray(value, dtype.as_numpy_dtype),
                             dtype=dtype))
  return request


def predict(server: str, request: predict_pb2.PredictRequest,
            timeout_seconds: float = 30.0) -> Dict[str, np.ndarray]:
  """Sends `request` to `server` (host:port); returns the output arrays."""
  # Imported here: building requests (and the tests) needs no gRPC runtime.
  import grpc  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import (  # pylint: disable=g-import-not-at-top
      prediction_service_pb2_grpc)
  with grpc.insecure_channel(server) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout_seconds)
  return {name: tf.make_ndarray(proto)
          for name, proto in response.outputs.items()}


def _define_flags():
  flags.DEFINE_string("server", "localhost:8500", "TF Serving gRPC address.")
  flags.DEFINE_string("model_name", "tfglv", "Served model name.")
  flags.DEFINE_integer("version", None, "Model version (default: latest).")
  flags.DEFINE_string("request", None, "A REST body JSON file to send.")
  flags.DEFINE_string("output", None, "Save the outputs to this .npz file.")
  flags.DEFINE_float("timeout_seconds", 30.0, "RPC deadline.")
  flags.mark_flag_as_required("request")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  options = flags.FLAGS
  with open(options.request) as f:
    body = json.load(f)
  try:
    request = predict_request(body, options.model_name, options.version)
  except (KeyError, ValueError) as e:
    raise app.UsageError(f"{options.request}: {e}") from None
  outputs = predict(options.server, request, options.timeout_seconds)
  for name, value in sorted(outputs.items()):
    print(f"{name}: {value.dtype} {list(value.shape)}")
  if options.output:
    np.savez(options.output, **outputs)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
