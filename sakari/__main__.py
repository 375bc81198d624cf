import sys

from sakari.cli import main

sys.exit(main())
