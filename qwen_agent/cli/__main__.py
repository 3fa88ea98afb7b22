"""`python -m qwen_agent.cli`."""

import sys

from qwen_agent.cli import main

sys.exit(main())
