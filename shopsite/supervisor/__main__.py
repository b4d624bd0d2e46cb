import sys

from shopsite.supervisor.cli import main

sys.exit(main())
