import sys

from sigbridge.cli import main

sys.exit(main())
