"""`python -m shape_pipeline` is the same as the `shape-pipeline` command."""

import sys

from shape_pipeline.cli import main

sys.exit(main())
