"""The gRPC client's request building (no server needed).

Requests built from the exported REST bodies are run through the SavedModel
in tests/export_lib/test_requests.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from export import grpc_client
import tfglv
from tfglv.export_lib import requests as requests_lib
from tfglv.export_lib import signatures


@pytest.mark.parametrize("model_name", tfglv.configs.MODEL_VARIANTS)
def test_grpc_client_dtypes_cover_every_signature_input(model_name):
  config = tfglv.configs.get("tiny", model=model_name)
  for spec in signatures.signature_specs(config.model).values():
    for key, tensor_spec in spec.inputs.items():
      assert grpc_client.INPUT_DTYPES[key] == tensor_spec.dtype, key


def test_request_carries_the_body_with_the_signature_dtypes():
  config = tfglv.configs.get("tiny")
  inputs = requests_lib.example_inputs(config.model)["sample"]
  body = requests_lib.rest_body("sample", inputs)
  request = grpc_client.predict_request(body, "tfglv", version=3)
  assert request.model_spec.name == "tfglv"
  assert request.model_spec.signature_name == "sample"
  assert request.model_spec.version.value == 3
  for key, value in inputs.items():
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs[key]), value)
  with pytest.raises(ValueError, match="Unknown input 'noise'"):
    grpc_client.predict_request(
        {"signature_name": "sample", "inputs": {"noise": [0.0]}}, "tfglv")
