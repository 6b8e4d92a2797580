import sys

from avspeech.cli import main

sys.exit(main())
