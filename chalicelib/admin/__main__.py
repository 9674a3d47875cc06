"""`python -m chalicelib.admin`: the same as `wxauth-admin`."""

import sys

from chalicelib.admin import main

sys.exit(main())
