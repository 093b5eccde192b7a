"""Export and import of incidents with everything attached to them, as one JSON document."""

from engine.incidents.transfer.parsing import *  # noqa: F403
