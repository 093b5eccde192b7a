"""Escalation policies, durable timers and the notification outbox."""
