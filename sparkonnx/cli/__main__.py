"""`python -m sparkonnx.cli`: the `sparkonnx` command."""

import sys

from sparkonnx.cli import main

sys.exit(main())
