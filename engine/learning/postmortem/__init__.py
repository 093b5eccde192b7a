"""After the incident: post-mortems, satisfaction ratings and follow-up tickets.

Writes follow the service layer's rule (engine/incidents/services.py): each change is one transaction that
locks the incident, writes its rows and appends an Event to the incident's timeline. Reads
assemble a post-mortem document as a plain dict; engine.learning.postmortem_render turns it into Markdown.

A post-mortem's timeline is assembled from the incident's events (first alert, declared,
acknowledged, escalated, identified, resolved…); once a post-mortem is stored, its entries are
rows a person can edit, annotate, hide and add to, and new incident events keep being added.
Stored entries keep their origin: the first alert has no event, as a person's entry has not, yet
it is assembled (timeline.seeded_entry_id tells it apart) and, like the others, only hidden.

- rules: limits, states and the UNSET marker
- timeline: entries assembled from incident events, downtime read off them
- document: the post-mortem document (reading)
- edits: text, impact, timeline lines given with them, publish and unpublish
- given: timeline lines a request gives in bulk (the spec's post-mortem block), their times read
- entries: timeline entries a person adds, edits, hides or removes
- followups: satisfaction ratings and follow-up tickets
"""

from engine.learning.postmortem.document import postmortem_document
from engine.learning.postmortem.edits import PostmortemEdit, edit_postmortem, publish, unpublish, update_postmortem
from engine.learning.postmortem.entries import add_entry, edit_entry, remove_entry
from engine.learning.postmortem.followups import list_followups, open_followup_ticket, rate_satisfaction, set_followup_ticket
from engine.learning.postmortem.given import GivenEntry
from engine.learning.postmortem.rules import DRAFT, PUBLISHED, UNSET
from engine.learning.postmortem.timeline import assemble_timeline, computed_downtime, detection_entry, entry_from_event

__all__ = [
    "DRAFT",
    "GivenEntry",
    "PUBLISHED",
    "PostmortemEdit",
    "UNSET",
    "add_entry",
    "assemble_timeline",
    "computed_downtime",
    "detection_entry",
    "edit_entry",
    "edit_postmortem",
    "entry_from_event",
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
