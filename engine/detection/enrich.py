"""Pattern recognition and metrics correlation for every new incident, off the change path.

The enricher follows the change feed; for each incident opened while it runs (by any process,
any source) it labels the incident frequent/rare/new, links the most similar past incidents with
their fixes, ranks the metric changes around its start, and stores both on the incident through
the service layer. Anomaly incidents arrive with their analysis already and are left alone.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.detection.patterns import PAST_FIELDS

log = logging.getLogger("pulseguard.detection.enrich")
UTC = UTC
ACTOR = "engine"
CATCH_UP_SECONDS = 300.0


async def pattern_analysis(incident: dict[str, Any], days: int = 30) -> dict[str, Any]:
    """`patterns.analyze` over the incidents of the last `days` (the incident itself excluded)."""
    from engine.detection.incident import jsonable
    from engine.detection.patterns import analyze
    from engine.storage.models import Incident

    since = datetime.now(UTC) - timedelta(days=days)
    rows = await Incident.filter(created_at__gte=since).exclude(number=incident.get("number") or 0).values(*PAST_FIELDS)
    past = [{**r, "key": f"INC-{r['number']}"} for r in rows]
    result: dict[str, Any] = jsonable(analyze(incident, past, days=days))
    return result


class IncidentEnricher:
    name = "incident-enricher"

    def __init__(self, patterns: Any = None, correlation: Any = None, interval: float = 0.5) -> None:
        self.patterns = patterns
        self.correlation = correlation
        self.interval = interval
        self.engine: Any = None
        self._halt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.enriched: list[str] = []

    @property
    def days(self) -> int:
        return int(getattr(self.patterns, "historical_analysis_days", 30) or 30)

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=float(getattr(self.correlation, "window", 3600.0) or 3600.0))

    async def start(self, engine: Any) -> None:
        from engine.storage.models import Event

        self.engine = engine
        self._halt.clear()
        # Start a few minutes back: incidents opened while no engine ran this (a takeover after
        # kill -9 takes ~12 s) are enriched too; ones already enriched are skipped.
        before = datetime.now(UTC) - timedelta(seconds=CATCH_UP_SECONDS)
        last = await Event.filter(at__lt=before).order_by("-id").first().values_list("id", flat=True)
        cursor = int(last) if isinstance(last, int) else 0
        self._task = asyncio.create_task(self._run(cursor), name=self.name)

    async def stop(self) -> None:
        # Signal rather than cancel: a cancelled SQLite transaction must not be left half-begun.
        self._halt.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except TimeoutError:
                self._task.cancel()
            self._task = None

    async def _run(self, cursor: int) -> None:
        from engine.incidents.feed import events_since

        while not self._halt.is_set():
            try:
                batch = await events_since(cursor, limit=100)
            except Exception:
                log.exception("enricher could not read the change feed")
                batch = []
            for event in batch:
                cursor = event["id"]
                if event["kind"] == "created" and event["incident"] and self._halt.is_set() is False:
                    await self.enrich(event["incident"])
            if not batch:
                try:
                    await asyncio.wait_for(self._halt.wait(), self.interval)
                except TimeoutError:
                    pass

    async def enrich(self, key: str) -> None:
        from engine.detection.gather import correlate_incident
        from engine.incidents import services
        from engine.storage.models import Incident

        try:
            incident = await Incident.get_or_none(number=int(key.split("-", 1)[1]))
            # A merged incident takes no changes: its survivor was analysed on its own opening.
            if incident is None or incident.merged_into is not None or (incident.analysis or {}).get("pattern"):
                return
            like = {name: getattr(incident, name) for name in PAST_FIELDS}
            if getattr(self.patterns, "enabled", True):
                await services.set_analysis(key, "pattern", await pattern_analysis(like, self.days), ACTOR)
            if getattr(self.correlation, "enabled", True) and not (incident.analysis or {}).get("correlation"):
                config = getattr(self.engine, "config", None)
                data = await correlate_incident(key, config, self.window)
                await services.set_analysis(key, "correlation", data, ACTOR)
            self.enriched.append(key)
        except Exception as exc:
            from engine.storage.diskfull import disk_full_message

            if (full := disk_full_message(exc)) is not None:
                log.warning("could not analyse %s: %s", key, full)
            else:
                log.exception("could not analyse %s", key)
