"""The outbox deliverer: sends pending notifications, retries, and records every outcome."""

from engine.notify.deliverer.worker import Deliverer, RetryPolicy, pending_unservable, unservable_filter

__all__ = ["Deliverer", "RetryPolicy", "pending_unservable", "unservable_filter"]
