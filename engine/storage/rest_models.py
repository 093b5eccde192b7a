"""Tables of the HTTP surface: API tokens and status-page subscribers."""

from __future__ import annotations

from tortoise import fields

from engine.storage.base import Model


class ApiToken(Model):
    """An API token. Only its SHA-256 is stored, the token itself is shown once at creation."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, db_index=True)
    role = fields.CharField(max_length=16)  # viewer | responder | admin
    token_hash = fields.CharField(max_length=64, unique=True)
    # The first characters of the token, so a list can tell tokens apart without revealing them.
    prefix = fields.CharField(max_length=16)
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=64)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_token"


class Subscriber(Model):
    """A status-page e-mail subscriber. Updates are sent only after the address is confirmed."""

    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=320, unique=True)
    # Services the subscriber follows (empty: every public service).
    services: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # Services asked for in the latest request, applied when its confirmation link is opened.
    requested_services: fields.JSONField[list[str]] = fields.JSONField(default=list)
    # Random secret carried by the confirmation and unsubscribe links.
    token = fields.CharField(max_length=64, unique=True)
    confirmed_at = fields.DatetimeField(null=True)
    confirm_sent_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "status_subscriber"


class IdempotentRequest(Model):
    """A write sent with an Idempotency-Key header, and its answer once served.

    Claimed before it is served (engine.rest.idempotency), so the same request sent again (a
    client's retry after a lost answer) gets that answer instead of making the change twice."""

    id = fields.IntField(primary_key=True)
    # Keys are the caller's own: two tokens may use the same key for different requests.
    token_id = fields.IntField()
    key = fields.CharField(max_length=255)
    # SHA-256 of the method, path, query and body: the same key with another request is refused.
    fingerprint = fields.CharField(max_length=64)
    method = fields.CharField(max_length=8)
    path = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(db_index=True)
    # The answer's status: None while it is being served (and for good if the engine stopped
    # before it was kept), 0 when it failed with its outcome unknown (a lost database connection).
    status = fields.IntField(null=True)
    content_type = fields.CharField(max_length=100, null=True)
    body = fields.TextField(null=True)

    class Meta:
        table = "idempotent_request"
        unique_together = (("token_id", "key"),)
