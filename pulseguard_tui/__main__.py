import sys

from pulseguard_tui.cli import main

# Guarded: the anomaly detector's worker process is spawned, and spawn imports the main module.
if __name__ == "__main__":
    sys.exit(main())
