"""TF Serving warmup records: one per signature, each runs.

All export tests share one export of a stand-in trained tiny run made
through the real command line (see export_testlib).
"""


import export_testlib
from tfglv.export_lib import signatures
from tfglv.export_lib import warmup


call = export_testlib.call  # a signature of a loaded SavedModel


def test_warmup_records_parse_and_run(run, loaded):
  records = warmup.read_warmup_requests(run.version_dir)
  assert [r[1] for r in records] == list(signatures.SIGNATURE_NAMES)
  specs = signatures.signature_specs(run.config.model)
  for model_name, name, inputs in records:
    assert model_name == export_testlib.MODEL_NAME
    assert {k: v.dtype for k, v in inputs.items()} == {
        k: s.dtype.as_numpy_dtype for k, s in specs[name].inputs.items()}
    outputs = call(loaded, name, **inputs)
    assert set(outputs) == set(specs[name].outputs)


