"""Imports TensorFlow without its start-up banner.

Importing TF 2.21 writes, straight to file descriptor 2 and twice over, a
banner of INFO lines (oneDNN, the CUDA stub, CPU features), and its first
device query an `E` line "failed call to cuInit" on machines without a GPU.
None of it is actionable, and it buried the one line that matters. This
module imports TF and queries its devices with fd 2 captured, then writes
back every captured line except those (`_NOISE`); anything else TF says
(real warnings and errors) still appears, in order.

Set TFGLV_TF_STARTUP_LOGS=1 to see everything. Checked against TF 2.21.0.
"""

import os
import re
import sys
import tempfile

_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called|"
    r"port\.cc:\d+\] oneDNN custom operations are on|"
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers|"
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized|"
    r"^To enable the following instructions:|"
    r"cuda_platform\.cc:\d+\] failed call to cuInit")


def import_tensorflow():
  """Imports TF (once) and initialises its device list, banner filtered."""
  if "tensorflow" in sys.modules or os.environ.get("TFGLV_TF_STARTUP_LOGS"):
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    return
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError):  # No usable fd 2: nothing to filter.
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    return
  with tempfile.TemporaryFile() as capture:
    os.dup2(capture.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.list_physical_devices()  # The cuInit line comes from here.
    finally:
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      kept = [line for line in capture.read().decode(
          "utf-8", "replace").splitlines() if not _NOISE.search(line)]
      if kept:
        sys.stderr.write("\n".join(kept) + "\n")
        sys.stderr.flush()
