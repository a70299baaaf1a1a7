"""Entry point: python -m firstboot."""

import sys

from firstboot.cli import main

sys.exit(main())
