"""``python -m kie_mcp``: the same as the ``kie-mcp`` command."""

import sys

from kie_mcp.cli import main

sys.exit(main())
