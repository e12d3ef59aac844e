"""``python -m ecgssl.cli``."""

import sys

from ecgssl.cli import main

sys.exit(main())
