"""After the incident: post-mortems, satisfaction ratings and follow-up tickets."""

from engine.learning.postmortem.edits import (
    UNSET,
    add_entry,
    edit_entry,
    list_followups,
    open_followup_ticket,
    postmortem_document,
    publish,
    rate_satisfaction,
    remove_entry,
    set_followup_ticket,
    unpublish,
    update_postmortem,
)

__all__ = [
    "UNSET",
    "add_entry",
    "edit_entry",
    "list_followups",
    "open_followup_ticket",
    "postmortem_document",
    "publish",
    "rate_satisfaction",
    "remove_entry",
    "set_followup_ticket",
    "unpublish",
    "update_postmortem",
]
