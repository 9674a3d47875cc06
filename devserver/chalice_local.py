"""`python -m devserver.chalice_local local ...`: Chalice's own CLI, with TCP_NODELAY.

`chalice local` answers with two writes (the headers, then the body) on keep-alive connections.
With Nagle's algorithm on, the body waits for the client to acknowledge the headers, and a
client delays that acknowledgement by up to 40 ms: every answer of the local server took 44 ms,
even a JWKS lookup (bench/RESULTS.md). socketserver's own switch turns Nagle off for the
handler's connections; the rest is `chalice` exactly.
"""

from __future__ import annotations

import sys

from chalice import local
from chalice.cli import main

local.ChaliceRequestHandler.disable_nagle_algorithm = True

if __name__ == "__main__":
    sys.exit(main())
