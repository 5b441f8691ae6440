import sys

from rps_evals.cli import main

sys.exit(main())
