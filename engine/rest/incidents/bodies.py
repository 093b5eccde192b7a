"""The incident endpoints' request bodies and the field types they share."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, Any, ClassVar, Literal

from fastapi import Path
from pydantic import Field, PrivateAttr, StrictBool, ValidationError, ValidatorFunctionWrapHandler, model_validator

from engine.core.matchers import TAG_FIELD_PATTERN, TAG_RULE
from engine.rest.common import NAME_PATTERN, Body, Day, Text, When, fields_named


class Wrapped(Body):
    """A body the spec also sends inside a wrapper object (`{"resolution": {...}}`): accepted
    either way, and refused naming each field as sent (`resolution.root_cause` when wrapped)."""

    wrapper: ClassVar[str]
    _wrapped: bool = PrivateAttr(False)

    @model_validator(mode="wrap")
    @classmethod
    def _unwrap(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        wrapper = cls.wrapper
        if not (isinstance(data, dict) and isinstance(data.get(wrapper), dict)):
            return handler(data)
        # Fields beside the wrapper (`{"resolution": {...}, "amend": true}`) count as in it, and
        # anything else there is refused by its own name, not as "resolution: is not a field".
        beside = {k: v for k, v in data.items() if k != wrapper}
        twice = sorted(k for k in beside if k in data[wrapper])
        if twice:
            raise ValueError(f"{twice[0]} is given both in {wrapper} and beside it; give it once")
        try:
            body = handler({**data[wrapper], **beside})
        except ValidationError as exc:
            errors = [
                {**err, "loc": err["loc"] if err["loc"][:1] and err["loc"][0] in beside else (wrapper, *err["loc"])} for err in exc.errors()
            ]
            raise ValidationError.from_exception_data(exc.title, errors) from None  # type: ignore[arg-type]
        body._wrapped = True
        return body

    def refusals_named(self) -> AbstractContextManager[None]:
        """Around the service call: its refusal of a field names it as this body sent it."""
        if not self._wrapped:
            return nullcontext()
        return fields_named({name: f"{self.wrapper}.{name}" for name in type(self).model_fields})


IncidentId = Annotated[Text, Path(description="Incident key such as INC-42 (or its number)", max_length=40)]
Name = Annotated[Text, Field(pattern=NAME_PATTERN, description="letters, digits and _.-:@#/+, up to 64")]
Tag = Annotated[Text, Field(pattern=TAG_FIELD_PATTERN, description=TAG_RULE)]
Short = Annotated[Text, Field(max_length=300, pattern=r"\S")]
Long = Annotated[Text, Field(max_length=20_000)]
Required = Annotated[Text, Field(max_length=20_000, pattern=r"\S")]
Severity_ = Literal["critical", "high", "medium", "low"]
Settable = Literal["investigating", "identified", "monitoring"]
EvidenceKind_ = Literal["screenshot", "log", "response", "link", "file", "samples"]
FollowUpGroup_ = Literal[
    "preventive_measures", "monitoring_improvements", "documentation_updates", "process_changes", "technical_changes", "team_changes"
]


class IncidentCreate(Wrapped):
    """The spec's manual incident: `affected_services` is accepted as another name for
    `services`; the spec's wrapper `{"manual_incident": {...}}` is unwrapped."""

    title: Short
    severity: Severity_
    description: Long = ""
    services: list[Name] = Field(default_factory=list, max_length=100)
    affected_services: list[Name] | None = Field(None, max_length=100, description="the spec's name for services (use one of the two)")
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    assignee: Name | None = None
    dedup_key: Annotated[Text, Field(max_length=200, pattern=r"\S")] | None = None
    detected_at: When | None = Field(
        None, description="when the problem was first seen, if before now (ISO 8601 with a zone; not in the future): MTTD counts from it"
    )

    wrapper: ClassVar[str] = "manual_incident"

    @model_validator(mode="after")
    def _one_services(self) -> IncidentCreate:
        if self.affected_services is not None:
            if "services" in self.model_fields_set and self.services != self.affected_services:
                raise ValueError("give services or affected_services, not both")
            self.services = self.affected_services
        return self


class IncidentUpdate(Wrapped):
    """Fields to change; each one present is applied through its own service function. The
    spec's `{"manual_incident": {...}}` is unwrapped, as POST /api/incidents does."""

    wrapper: ClassVar[str] = "manual_incident"

    title: Short | None = None
    description: Long | None = None
    services: list[Name] | None = Field(None, max_length=100, description="the complete new list of affected services")
    affected_services: list[Name] | None = Field(None, max_length=100, description="the spec's name for services (use one of the two)")
    status: Settable | None = None
    message: Long | None = Field(None, description="with status: the status update's text (posted even when the status is unchanged)")
    public: StrictBool = Field(False, description="with status and message: show the message on the status page")
    severity: Severity_ | None = None
    reason: Long | None = Field(None, description="with severity: why it changed")
    assignee: Name | Literal[""] | None = Field(None, description="who is assigned; null or an empty string unassigns")
    tags: list[Tag] | None = Field(None, max_length=100, description="the complete new list of tags")
    false_positive: StrictBool | None = None

    @model_validator(mode="after")
    def _one_services(self) -> IncidentUpdate:
        if self.affected_services is not None:
            if self.services is not None and self.services != self.affected_services:
                raise ValueError("give services or affected_services, not both")
            self.services = self.affected_services
        return self


Stated = Annotated[
    When | None,
    Field(
        description="when it happened, for back-filling (ISO 8601 with a zone; not in the future). Stored as the "
        "stated time; the record's created_at stays the server's time"
    ),
]


Author = Annotated[Text, Field(max_length=200)]


class OneComment(Body):
    """A comment of the spec's communication block."""

    content: Required
    internal_only: StrictBool = False
    author: Author | None = None
    timestamp: Stated = None


class StatusUpdateIn(Body):
    """A status update of the spec's communication block (internal unless public is true)."""

    message: Required
    status: Settable | None = None
    public: StrictBool = False
    timestamp: Stated = None


class Communication(Body):
    comments: Annotated[list[OneComment], Field(max_length=100)] = Field(default_factory=list)
    status_updates: Annotated[list[StatusUpdateIn], Field(max_length=100)] = Field(default_factory=list)


class CommentIn(Body):
    """One comment, or the spec's block `{"communication": {"comments": [...], "status_updates":
    [...]}}`: its comments, then its status updates, all or none."""

    content: Required | None = Field(None, description="the comment (required unless communication is sent)")
    internal_only: StrictBool = False
    author: Author | None = Field(
        None,
        description=(
            "display author (the spec's field). The token's name is always recorded as who wrote it; a different "
            'author is stored as on_behalf_of and shown as "AUTHOR via TOKEN"'
        ),
    )
    timestamp: Stated = None
    communication: Communication | None = Field(
        None, description="the spec's block: comments, then status updates, in one change (answered with {comments, updates})"
    )


class PublicUpdateIn(Body):
    """One update of the spec's public_updates block."""

    message: Required
    status: Settable | None = None
    timestamp: Stated = None


class UpdateIn(Body):
    """One status update, or the spec's block `{"public_updates": [...]}`: its updates posted
    in order, public, all or none."""

    message: Required | None = Field(None, description="the update (required unless public_updates is sent)")
    public: StrictBool = Field(True, description="true (the default): shown on the status page and sent to its subscribers")
    status: Settable | None = None
    timestamp: Stated = None
    public_updates: Annotated[list[PublicUpdateIn], Field(min_length=1, max_length=100)] | None = Field(
        None, description="the spec's block: public updates posted in order in one change (answered with {updates: [...]})"
    )


class StatusIn(Body):
    status: Settable
    message: Long | None = None
    public: StrictBool = False


class SeverityIn(Body):
    severity: Severity_
    reason: Long | None = None


class AssignIn(Body):
    assignee: Name | None = None


class TagsIn(Body):
    add: list[Tag] = Field(default_factory=list, max_length=100)
    remove: list[Tag] = Field(default_factory=list, max_length=100)


class Screenshot(Body):
    """A screenshot of the spec's evidence block: where it is, and when it was taken."""

    url: Annotated[Text, Field(max_length=4000, pattern=r"\S")]
    timestamp: When | None = Field(None, description="when it was taken (stored as the evidence's moment: range_from = range_to)")
    description: Long = ""


# The keys of the spec's `logs` object: log paths under names ending in "logs", and time_range.
LogKey = Annotated[str, Field(pattern=r"^(?:[A-Za-z0-9_]*logs|time_range)$")]
LogValue = Annotated[Text, Field(max_length=4000, pattern=r"\S")]


class EvidenceBlock(Body):
    screenshots: Annotated[list[Screenshot], Field(max_length=100)] = Field(default_factory=list)
    logs: Annotated[dict[LogKey, LogValue], Field(max_length=100)] = Field(
        default_factory=dict,
        description='log files by name ("application_logs": "/var/log/app/error.log"), recorded as references (the engine '
        'does not read them), and "time_range": "START - END", the part of them that matters',
    )


class EvidenceIn(Body):
    """One piece of evidence, or the spec's block `{"evidence": {"screenshots": [...], "logs":
    {...}}}`: each screenshot and each log path one piece, all or none."""

    kind: EvidenceKind_ | None = Field(None, description="required unless evidence is sent")
    url: Annotated[Text, Field(max_length=4000)] | None = None
    content: Annotated[Text, Field(max_length=1_000_000)] | None = None
    path: Annotated[Text, Field(max_length=4000, description="where an attached file came from (informational)")] | None = None
    range_from: When | None = None
    range_to: When | None = None
    description: Long = ""
    evidence: EvidenceBlock | None = Field(
        None, description="the spec's block: screenshots and log references added in one change (answered with {evidence: [...]})"
    )


class ResolveIn(Wrapped):
    """The spec's resolution; its wrapper `{"resolution": {...}}` is unwrapped."""

    root_cause: Required
    solution: Required
    category: Annotated[Text, Field(max_length=64)] | None = None
    verification_steps: list[Annotated[Text, Field(max_length=1000, pattern=r"\S")]] = Field(default_factory=list, max_length=100)
    resolved_at: When | None = Field(
        None,
        description="when it was resolved, for back-filling (ISO 8601 with a zone; not in the future, not before the incident "
        "opened or was acknowledged): the incident's resolved_at and MTTR use it; the timeline event stays at the server's time",
    )
    resolved_by: Annotated[Text, Field(max_length=64)] | None = Field(
        None,
        description="who resolved it (the spec's field), stored as the incident's resolved_by; the token's name is always "
        'recorded on the timeline as who made the change ("resolved … for NAME")',
    )
    amend: StrictBool = Field(
        False,
        description="true: an incident resolved already gets this root cause, category, solution and steps instead of a 409 "
        "(when and by whom it was resolved stay; nobody is notified again)",
    )

    wrapper: ClassVar[str] = "resolution"


class ReasonIn(Body):
    reason: Long | None = None


class FalsePositiveIn(Body):
    value: StrictBool = True
    reason: Long | None = None


class StepIn(Body):
    done: StrictBool = True


Action = Annotated[Text, Field(max_length=5000, pattern=r"\S")]


class FollowUpIn(Body):
    """One follow-up (`group` and `description`), or the spec's block `{"follow_up":
    {"preventive_measures": [...], ...}}`: its actions added together, all or none."""

    group: FollowUpGroup_ | None = Field(None, description="with description: one follow-up")
    description: Action | None = None
    owner: Name | None = Field(None, description="who does it (each of the block's actions)")
    due_date: Day | None = None
    follow_up: dict[FollowUpGroup_, Annotated[list[Action], Field(max_length=100)]] | None = Field(
        None, description="the spec's block: lists of actions by group, added in one change (answered with {followups: [...]})"
    )
    improvements: dict[FollowUpGroup_, Annotated[list[Action], Field(max_length=100)]] | None = Field(
        None,
        description="the spec's continuous-improvement block (process_changes, technical_changes, team_changes): "
        "added as follow-ups as follow_up is",
    )


class MergeIn(Body):
    into: Annotated[Text, Field(min_length=1, max_length=40, description="the surviving incident: INC-5 or 5")]
    reason: Long | None = None


class SplitIn(Body):
    fingerprint: Annotated[
        Text, Field(min_length=1, max_length=200, description="the alert's fingerprint (timeline alert entries carry it)")
    ]
