"""The configuration file (`pulseguard.toml`): schema, loading, and one clear line per problem.

Sections use the incident-management specification's own names (`escalation_policy`,
`triggers`, `ai_detection`, `notifications`, `status_page_integration`, `integrations`) plus
`engine`, `users`, `services`, `targets`, `schedules`, `webhooks` and `console`.
Unknown keys are errors. Secrets never live in the file: a key ending in `_env` names the
environment variable that holds one, and a secret written in directly is refused.

A file ending in `.json` holds the same schema as JSON (so the specification's blocks load as
they are). `load_config(path)` returns a `Config` or raises `ConfigError` listing every problem at once,
each as `<file>: <key.path>: <what is wrong, what was expected>`.

Modules, from the bottom up (import each name from its module; this package re-exports nothing):
`fields` (value types, validators, `ConfigError`), `conditions` (trigger conditions),
`engine_settings`, `targets`, `detection`, `escalation`, `oncall`, `notifications` (the sections),
`model` (the top-level `Config`), `problems` (error messages, secret and reference checks) and
`loading` (parse, load, check, find the file).
"""
