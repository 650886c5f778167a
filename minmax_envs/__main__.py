"""``python -m minmax_envs`` is the ``minmax`` command."""

import sys

from minmax_envs.cli import main

sys.exit(main())
