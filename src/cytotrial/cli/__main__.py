"""``python -m cytotrial.cli``: the ``cytotrial`` command."""

import sys

from ._main import main

sys.exit(main())
