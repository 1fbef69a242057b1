"""``python -m tfdet.cli``: the same as the ``tfdet`` command."""

import sys

from tfdet.cli import main

sys.exit(main())
