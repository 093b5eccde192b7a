"""Subprocess for the concurrency tests: N incident changes through the service layer."""

from __future__ import annotations

import asyncio
import random
import sys

from engine.incidents import services
from engine.storage.db import close_database, open_database, resolve_database


async def main(url: str, name: str, count: int) -> None:
    db = resolve_database(url)
    await open_database(db, migrate_schema=False)
    rng = random.Random(name)
    mine: list[str] = []
    try:
        for i in range(count):
            if i % 10 == 0 or not mine:
                inc = await services.create_incident(title=f"{name} #{i}", severity="low", actor=name)
                mine.append(inc.key)
            else:
                await services.comment(rng.choice(mine), f"{name} change {i}", name)
    finally:
        await close_database()
    print(len(mine))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
