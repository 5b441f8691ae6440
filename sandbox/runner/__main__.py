"""`python3 -I <dir>/runner`: -I puts only this directory on sys.path; import the package from its parent."""

import os
import sys

if not __package__:
    sys.path[0] = os.path.dirname(os.path.abspath(sys.path[0]))
    from runner.main import main
else:
    from .main import main

main()
