"""Storage backends and helpers."""
