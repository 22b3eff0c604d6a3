"""Example requests: the REST bodies written with the export, and the gRPC
requests built from them, run through the SavedModel.

All export tests share one export of a stand-in trained tiny run made
through the real command line (see export_testlib).
"""

import glob
import json
import os

import numpy as np
import tensorflow as tf

import export_testlib
from export import grpc_client
from tfglv.export_lib import requests as requests_lib
from tfglv.export_lib import signatures


call = export_testlib.call  # a signature of a loaded SavedModel


def test_grpc_requests_from_the_rest_bodies_run(run, loaded):
  specs = signatures.signature_specs(run.config.model)
  paths = sorted(glob.glob(os.path.join(run.version_dir, "requests", "*.json")))
  assert len(paths) == len(signatures.SIGNATURE_NAMES)
  for path in paths:
    with open(path) as f:
      body = json.load(f)
    request = grpc_client.predict_request(body, "tfglv", version=1)
    name = request.model_spec.signature_name
    assert request.model_spec.version.value == 1
    # TF Serving's gRPC path does not cast: dtypes must already match.
    assert {k: tf.dtypes.as_dtype(t.dtype) for k, t in request.inputs.items()
            } == {k: s.dtype for k, s in specs[name].inputs.items()}
    inputs = {k: tf.make_ndarray(t) for k, t in request.inputs.items()}
    from_json = requests_lib.inputs_from_rest_body(body, run.config.model)
    np.testing.assert_equal(inputs, from_json)
    assert set(call(loaded, name, **inputs)) == set(specs[name].outputs)


