"""Where the configuration file is: found without loading the configuration's model (pydantic
schemas that take some 60 ms of CPU to build), which a process with no file never needs."""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILENAME = "pulseguard.toml"
ENV_CONFIG = "PULSEGUARD_CONFIG"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Which file to use: `--config`, then $PULSEGUARD_CONFIG, then ./pulseguard.toml, then
    the user config directory's pulseguard.toml. None when there is none (use defaults)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_CONFIG, "").strip()
    if env:
        return Path(env).expanduser()
    local = Path.cwd() / CONFIG_FILENAME
    if local.is_file():
        return local
    from platformdirs import user_config_path

    user = user_config_path("pulseguard", appauthor=False) / CONFIG_FILENAME
    if user.is_file():
        return user
    return None
