"""``python -m icnet_ros.bench``: the `bench` command, and its worker subprocesses."""

import sys

from .cli import main

sys.exit(main())
