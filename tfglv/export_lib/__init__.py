"""Export of trained runs: a SavedModel for TF Serving and TF Lite files.

    from tfglv.export_lib import exporter
    result = exporter.export_from_workdir(workdir, "/models", "tfglv",
                                          tflite_variants=("float32",))

Modules:
  signatures:  the exported functions and their fixed input specs.
  saved_model: the SavedModel, written through `keras.export.ExportArchive`.
  requests:    example inputs, REST `:predict` bodies.
  warmup:      TF Serving warmup records.
  tflite:      static-shape TF Lite conversion, op check, parity.
  exporter:    the whole export of one run (what `export/main.py` runs).
  demo_run:    a stand-in training workdir for tests and benchmarks.
"""
