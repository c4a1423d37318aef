"""``python -m cytotrial``: the ``cytotrial`` command."""

import sys

from .cli import main

sys.exit(main())
