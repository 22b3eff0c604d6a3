"""TF Serving warmup records (`assets.extra/tf_serving_warmup_requests`).

TF Serving replays these `PredictionLog` records when it loads a version,
before marking it available, so the first real request does not pay for
graph initialisation and memory allocation. One record per signature.
"""

import os
from typing import List, Mapping, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def predict_request(model_name: str, signature_name: str,
                    inputs: Mapping[str, np.ndarray]
                    ) -> predict_pb2.PredictRequest:
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def write_warmup_requests(saved_model_dir: str, model_name: str,
                          requests: Mapping[str, Mapping[str, np.ndarray]]
                          ) -> str:
  """Writes one predict record per `{signature: inputs}`; returns the path."""
  path = os.path.join(saved_model_dir, WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for signature_name, inputs in requests.items():
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(
              request=predict_request(model_name, signature_name, inputs)))
      writer.write(log.SerializeToString())
  return path


def read_warmup_requests(saved_model_dir: str
                         ) -> List[Tuple[str, str, dict]]:
  """[(model name, signature name, {input: array})] of the warmup file."""
  path = os.path.join(saved_model_dir, WARMUP_FILE)
  records = []
  for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
    log = prediction_log_pb2.PredictionLog.FromString(serialized)
    if log.WhichOneof("log_type") != "predict_log":
      raise ValueError(f"{path} holds a {log.WhichOneof('log_type')} record; "
                       f"only predict_log records are written here.")
    request = log.predict_log.request
    records.append((request.model_spec.name, request.model_spec.signature_name,
                    {name: tf.make_ndarray(proto)
                     for name, proto in request.inputs.items()}))
  return records
