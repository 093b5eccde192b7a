"""Incident endpoints: list, read, create, update, and every change the console can make.

Each write calls the same engine.incidents.services function the CLI and the console call, with the
token's name as the actor. `{id}` is the incident key (`INC-42`) or its number.

- bodies: request bodies and shared field types
- reads, writes: the routes, each module with its own router (no prefix, no tags); this one
  gathers them under /api, reads first, as the OpenAPI document lists them
- correlation: the correlation analysis, also in the spec's correlation_analysis shape
"""

from fastapi import APIRouter

from engine.rest.incidents import correlation, reads, writes

router = APIRouter(prefix="/api", tags=["incidents"])
for _module in (reads, writes, correlation):
    router.include_router(_module.router)

__all__ = ["router"]
