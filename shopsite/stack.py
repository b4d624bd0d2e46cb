"""Former home of the process supervisor, kept as a thin entry: see shopsite/supervisor/.

``python -m shopsite.stack`` still starts the system, and ``from shopsite.stack
import Stack, StackConfig`` still works for code written before the split.
"""

from shopsite.supervisor import *  # noqa: F403
from shopsite.supervisor import __all__  # noqa: F401
from shopsite.supervisor.cli import main

if __name__ == "__main__":
    import sys

    sys.exit(main())
