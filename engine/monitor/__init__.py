"""The monitoring engine: probes, scheduler, metric history, threshold triggers, maintenance
windows, the engine lease and the demo.

Nothing heavy is imported here; `engine.runtime.engine.Engine` is the entry point.
"""
