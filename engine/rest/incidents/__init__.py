"""Incident endpoints: list, read, create, update, and every change the console can make."""

from engine.rest.incidents.writes import router

__all__ = ["router"]
