"""The outbox deliverer: sends pending notifications, retries, and records every outcome.

- Only the oldest pending row of a stream (one incident, one destination) is sent, so a
  "resolved" never overtakes its "triggered".
- A retryable failure (network, timeout, HTTP 408/425/429/5xx) is retried with exponential
  backoff and jitter (honouring Retry-After); a permanent refusal (other 4xx, SMTP 5xx) is not
  retried and the row is marked dead with the reason; so is a row older than `max_age`.
- Each row carries a dedup key that the channels pass on (X-PulseGuard-Delivery, PagerDuty's
  dedup_key, the e-mail Message-ID), so a receiver that honours it shows a retry once.
- Claims are short leases (`claimed_until`, 15 s) that the live deliverer renews every few seconds
  while it holds a row, so several engines on one PostgreSQL share the work, a long send is never
  taken over, and a crashed engine's rows go out again (same dedup key) within seconds; no
  transaction is held while a message is in flight.
- At most `per_destination` messages to one destination are in flight, and due rows are claimed
  critical incidents first, then by due time: a hanging receiver holds a few slots of its own and
  never delays a page to another destination.
- Failures are written to the incident's timeline; sending runs in its own tasks with timeouts,
  so a slow or dead receiver never blocks the engine.
- Under the engine lease (`fence`), a row is claimed only while this process leads: the lease
  row is checked in the claim's transaction, and once more (by this process's clock) just before
  the message goes out, so an engine frozen past its lease and resumed sends nothing the new
  leader sends. Outcomes of messages that did go out are still recorded (fenced by the row's
  own claim), so nothing is sent again for want of a record.
- Recording locks the incidents' rows (as the timeline entries' foreign key does) before the
  timeline's feed lock, the order the service layer and the timer claimer use: on PostgreSQL
  the other order deadlocks with an escalation step firing for the same incident, and a
  recorder chosen as the victim left a sent message pending, to go out again.
- A row for a channel this process has no configuration for (queued by a process with another
  configuration) is never claimed, so never dead: it stays pending, and once it has waited
  `waiting_grace` unclaimed its `last_error` and the incident's timeline say why.

- worker: the Deliverer (pipeline of claim, send and record tasks, heartbeat, stop)
- claims: claiming stream heads, renewing and giving back claims, rows no channel here serves
- recording: outcomes and waiting notes on the timeline, in the lock order above
- policy: RetryPolicy
"""

from engine.notify.deliverer.claims import pending_unservable, unservable_filter
from engine.notify.deliverer.policy import RetryPolicy
from engine.notify.deliverer.worker import Deliverer

__all__ = ["Deliverer", "RetryPolicy", "pending_unservable", "unservable_filter"]
