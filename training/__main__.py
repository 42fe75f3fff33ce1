import sys

from event_fm.training.cli import main

sys.exit(main())
