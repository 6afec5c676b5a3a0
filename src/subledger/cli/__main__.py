import sys

from subledger.cli import main

sys.exit(main())
