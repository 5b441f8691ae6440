"""`python -m rps_train ...` is the same as `rps-train ...`."""

import sys

from rps_train.cli import main

sys.exit(main())
