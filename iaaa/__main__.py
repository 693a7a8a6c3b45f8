import sys

from iaaa.cli import main

sys.exit(main())
