"""The service layer: the one owner of every incident change.

Each public function is one transaction that writes its rows and appends an Event to the
incident's timeline (the change feed). Validation happens before anything is written, and a
refused change raises a DomainError with a message meant for the person who asked.

Other areas (escalation, detection) subscribe change hooks (engine.incidents.hooks) that run
inside the same transaction, so the rows they derive from a change (timers, outbox messages)
are stored atomically with it.

Where things live: validation (names, text, times), timeline (the lock, events, hooks and
`change`, the one transition sequence), lifecycle (open → acknowledge → … → resolve → reopen),
conversation (comments, updates, evidence), followups, grouping (firings joining an open incident,
merge, split), maintenance, page_actions (acknowledging or resolving from a page, once per link),
silences (and snoozes).
"""

from engine.core.clock import utcnow
from engine.core.domain import ANALYSIS_SECTIONS
from engine.incidents.services.conversation import add_evidence, comment, post_update, promote_comment
from engine.incidents.services.followups import add_followup, add_followups, complete_followup
from engine.incidents.services.grouping import (
    alert_fingerprints,
    count_firing,
    find_group,
    find_open_incident,
    merge,
    split,
    split_key,
    survivor_of,
    within_window,
)
from engine.incidents.services.lifecycle import (
    acknowledge,
    assign,
    change_severity,
    change_status,
    create_incident,
    edit_incident,
    mark_false_positive,
    reopen,
    resolve,
    set_analysis,
    set_tags,
    set_verification_step,
)
from engine.incidents.services.maintenance import active_maintenance, create_maintenance, end_maintenance
from engine.incidents.services.page_actions import PAGE_ACTIONS, LinkUsed, act_once
from engine.incidents.services.silences import (
    Silenced,
    create_silence,
    expire_silence,
    extend_silence,
    get_silence,
    list_silences,
    snooze,
    unsnooze,
)
from engine.incidents.services.timeline import (
    FEED_LOCK_ID,
    SYSTEM_ACTOR,
    Change,
    append_event,
    append_system_event,
    change,
    lock_incident,
    next_number,
    record_event,
    record_events,
    record_system_event,
    require_open,
)
from engine.incidents.services.validation import (
    CLOCK_SKEW,
    MAX_TEXT,
    MAX_TITLE,
    NAME_RE,
    check_services,
    display_name,
    known_services,
    path_safe_name,
    stated_time,
    storable,
    valid_actor,
    valid_name,
    valid_names,
    valid_tags,
    valid_text,
    valid_time,
)

__all__ = [
    "unsnooze",
    "snooze",
    "list_silences",
    "get_silence",
    "extend_silence",
    "expire_silence",
    "create_silence",
    "Silenced",
    "ANALYSIS_SECTIONS",
    "CLOCK_SKEW",
    "PAGE_ACTIONS",
    "LinkUsed",
    "FEED_LOCK_ID",
    "MAX_TEXT",
    "MAX_TITLE",
    "NAME_RE",
    "SYSTEM_ACTOR",
    "Change",
    "acknowledge",
    "act_once",
    "active_maintenance",
    "add_evidence",
    "add_followup",
    "add_followups",
    "alert_fingerprints",
    "append_event",
    "append_system_event",
    "assign",
    "edit_incident",
    "change",
    "change_severity",
    "change_status",
    "check_services",
    "known_services",
    "comment",
    "count_firing",
    "complete_followup",
    "create_incident",
    "create_maintenance",
    "display_name",
    "end_maintenance",
    "find_group",
    "find_open_incident",
    "lock_incident",
    "mark_false_positive",
    "merge",
    "next_number",
    "path_safe_name",
    "post_update",
    "promote_comment",
    "record_event",
    "record_events",
    "record_system_event",
    "reopen",
    "require_open",
    "resolve",
    "set_analysis",
    "set_tags",
    "set_verification_step",
    "split",
    "split_key",
    "survivor_of",
    "stated_time",
    "storable",
    "utcnow",
    "valid_actor",
    "valid_name",
    "valid_names",
    "valid_tags",
    "valid_text",
    "valid_time",
    "within_window",
]
