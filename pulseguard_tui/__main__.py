import sys

from pulseguard_tui.cli import main

sys.exit(main())
