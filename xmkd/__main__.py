import sys

from xmkd.cli import main

sys.exit(main())
