"""What the command-line entry points share: short errors.

absl answers a `UsageError` with the module's docstring and every flag
before the one line that matters. The entry points run through `run`
instead, which prints only that line and where the flags are described:

    FATAL: Unknown config field 'train.bogus'; allowed: ...
    (python -m train.main --helpfull describes every flag.)
"""

import sys
from typing import Callable, Optional

from absl import app


def run(main: Callable, module: str,
        flags_parser: Optional[Callable] = None) -> None:
  """`absl.app.run(main)`, with one-line usage errors (exit status 1)."""

  def main_with_short_errors(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      sys.stderr.write(f"FATAL: {e}\n(python -m {module} --helpfull "
                       f"describes every flag.)\n")
      sys.stderr.flush()
      sys.exit(e.exitcode)

  if flags_parser is None:
    app.run(main_with_short_errors)
  else:
    app.run(main_with_short_errors, flags_parser=flags_parser)
