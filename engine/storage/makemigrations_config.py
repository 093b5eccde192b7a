"""Config for `tortoise -c engine.storage.makemigrations_config.TORTOISE_ORM makemigrations`.

Migrations are generated against a throwaway SQLite file; they are backend-neutral.
"""

import tempfile
from pathlib import Path

from engine.storage.db import Database

TORTOISE_ORM = Database("sqlite", "", Path(tempfile.gettempdir()) / "pulseguard-makemigrations.db").tortoise_config()
