"""Export and import of incidents with everything attached to them, as one JSON document.

document: the format, the tables it carries (ATTACHED, NOT_EXPORTED) and the column walk.
export: export_incidents. parsing: parse_document, which checks a whole document first.
importing: import_document, which writes a checked document in one transaction.
"""

from engine.incidents.transfer.document import (
    ATTACHED,
    ENTRIES_KEY,
    FORMAT,
    FORMAT_VERSION,
    NOT_EXPORTED,
    POSTMORTEM_KEY,
    exported_models,
    stored_fields,
    uncovered_models,
)
from engine.incidents.transfer.export import export_incidents
from engine.incidents.transfer.importing import ImportResult, import_document
from engine.incidents.transfer.parsing import BadDocument, Incoming, parse_document

__all__ = [
    "ATTACHED",
    "ENTRIES_KEY",
    "FORMAT",
    "FORMAT_VERSION",
    "NOT_EXPORTED",
    "POSTMORTEM_KEY",
    "BadDocument",
    "ImportResult",
    "Incoming",
    "export_incidents",
    "exported_models",
    "import_document",
    "parse_document",
    "stored_fields",
    "uncovered_models",
]
