"""``python -m avspeech.cli ...``: the ``avspeech`` command where its console script is not installed."""
import sys

from avspeech.cli import main

sys.exit(main())
