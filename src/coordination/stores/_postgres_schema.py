"""The PostgreSQL store's schema, in one place, and how a found schema is judged.

A store owns one PostgreSQL schema (a namespace, `coordination` by default), so it shares a
database with an application's own tables without touching them. Order comes from identity
columns: every write of a run holds that run's row lock, so the numbers a run's records
and events draw follow its commits; runs started at one instant are listed in the order
they were started. The owed-work index is partial, as in
SQLite: recovery's query costs what the unfinished runs cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from coordination.errors import StoreError

__all__ = [
    "APPLICATION",
    "RUN_COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TABLES",
    "UPGRADES",
    "check_meta",
    "check_schema_name",
]

SCHEMA_VERSION = 2
APPLICATION = "coordination"

#: Every table the schema creates (a schema holding exactly these is ours).
TABLES = ("coordination_meta", "shapes", "runs", "steps", "events", "inbox", "requests")

#: The requests table (cancels, early messages for runs another process drives).
_REQUESTS = """
CREATE TABLE requests (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id text NOT NULL,
    at double precision NOT NULL,
    message text
);
CREATE INDEX requests_by_run ON requests (workflow_id, seq)
"""

SCHEMA = (
    """
CREATE TABLE coordination_meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE shapes (
    id text PRIMARY KEY,
    shape text NOT NULL
);
CREATE TABLE runs (
    workflow_id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    flow text NOT NULL,
    start text NOT NULL,
    status text NOT NULL,
    owner text,
    token bigint NOT NULL,
    lease_expires double precision,
    owed boolean NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    finished_at double precision,
    output text,
    error text,
    compensation_error text,
    recoveries integer NOT NULL DEFAULT 0,
    recovery_step text,
    shape text,
    parked_reason text
);
CREATE INDEX runs_by_flow_status ON runs (flow, status);
CREATE INDEX runs_by_created ON runs (created_at, seq);
CREATE INDEX runs_owed ON runs (flow, created_at, seq) WHERE owed;
CREATE TABLE steps (
    workflow_id text NOT NULL,
    key text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    outcome text NOT NULL,
    attempts integer NOT NULL,
    output text,
    error text,
    journal text NOT NULL,
    PRIMARY KEY (workflow_id, key)
);
CREATE INDEX steps_by_run ON steps (workflow_id, seq);
CREATE TABLE events (
    message_id text PRIMARY KEY,
    workflow_id text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    causation_id text,
    occurred_at double precision NOT NULL,
    message text NOT NULL
);
CREATE INDEX events_by_run ON events (workflow_id, seq);
CREATE TABLE inbox (
    message_id text NOT NULL,
    subscriber text NOT NULL,
    workflow_id text NOT NULL,
    handled boolean NOT NULL DEFAULT false,
    deliveries integer NOT NULL DEFAULT 0,
    dead boolean NOT NULL DEFAULT false,
    error text,
    dead_at double precision,
    PRIMARY KEY (message_id, subscriber)
);
CREATE INDEX inbox_by_run ON inbox (workflow_id);
"""
    + _REQUESTS
)

#: What brings a schema of an earlier version to the next one (its statements, and the
#: tables they add), applied when the store is opened, under the openers' lock and in one
#: transaction (only ever adding).
UPGRADES: dict[int, tuple[str, tuple[str, ...]]] = {
    # 1 -> 2: requests (cancels, early messages) for runs another process drives.
    1: (_REQUESTS, ("requests",)),
}

#: The run's columns as `_record` reads them, the shape's text joined in.
RUN_COLUMNS = (
    "r.workflow_id, r.flow, r.start, r.status, r.owner, r.token, r.lease_expires, r.owed, "
    "r.created_at, r.updated_at, r.finished_at, r.output, r.error, r.compensation_error, "
    "r.recoveries, r.recovery_step, r.shape, sh.shape, r.parked_reason"
)

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema_name(schema: object) -> str:
    """The schema name if it is a plain lower-case identifier, else `StoreError`."""
    if not isinstance(schema, str) or not _NAME.fullmatch(schema) or schema.startswith("pg_"):
        raise StoreError(
            f"PostgresStore(schema={schema!r}): use a lower-case identifier (letters, digits "
            f"and _, at most 63, not starting with a digit or pg_)"
        )
    return schema


def check_meta(meta: Mapping[str, object], where: str) -> int:
    """The schema version `meta` (the `coordination_meta` rows) names: this one, or one it
    can be upgraded from; else `StoreError`."""
    untouched = "it was left untouched"
    if meta.get("application") != APPLICATION:
        raise StoreError(f"{where} is not a coordination store; {untouched}")
    version = meta.get("schema")
    # ASCII digits only (str.isdigit() also takes "²"), and short enough for int().
    if not (
        isinstance(version, str) and version.isascii() and version.isdigit() and len(version) <= 9
    ):
        raise StoreError(f"{where} has an unreadable schema version {version!r}; {untouched}")
    if int(version) > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {version}, newer than this coordination (which reads "
            f"up to {SCHEMA_VERSION}); {untouched}: upgrade coordination"
        )
    if int(version) < SCHEMA_VERSION and int(version) not in UPGRADES:
        raise StoreError(
            f"{where} has schema version {version}, written by an earlier coordination; "
            f"{untouched}: finish its runs with that version, or use a new schema"
        )
    return int(version)
