"""The SQLite store's schema, in one place.

Tables are `WITHOUT ROWID` where a natural key exists: one b-tree per table instead of a
table plus a key index, so a step record costs one b-tree insert. The owed-work index is a
partial index: finished runs that owe nothing are not in it, so recovery's query costs what
the unfinished runs cost, however many finished runs the file keeps.
"""

from __future__ import annotations

__all__ = ["APPLICATION", "RUN_COLUMNS", "SCHEMA", "SCHEMA_VERSION", "UPGRADES"]

SCHEMA_VERSION = 3
APPLICATION = "coordination"

#: The requests table (cancels, early messages for runs another process drives).
_REQUESTS = """
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    at REAL NOT NULL,
    message TEXT
);
CREATE INDEX requests_by_run ON requests (workflow_id, seq)
"""

SCHEMA = (
    """
CREATE TABLE coordination_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE shapes (
    id TEXT PRIMARY KEY,
    shape TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE runs (
    workflow_id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    start TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    token INTEGER NOT NULL,
    lease_expires REAL,
    owed INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    output TEXT,
    error TEXT,
    compensation_error TEXT,
    recoveries INTEGER NOT NULL DEFAULT 0,
    recovery_step TEXT,
    shape TEXT,
    parked_reason TEXT
) WITHOUT ROWID;
CREATE INDEX runs_by_flow_status ON runs (flow, status);
CREATE INDEX runs_owed ON runs (flow, created_at) WHERE owed = 1;
CREATE TABLE steps (
    workflow_id TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    output TEXT,
    error TEXT,
    rows TEXT NOT NULL,
    PRIMARY KEY (workflow_id, key)
) WITHOUT ROWID;
CREATE TABLE events (
    message_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    causation_id TEXT,
    occurred_at REAL NOT NULL,
    message TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_by_run ON events (workflow_id, seq);
CREATE TABLE inbox (
    message_id TEXT NOT NULL,
    subscriber TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    handled INTEGER NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    dead_at REAL,
    PRIMARY KEY (message_id, subscriber)
) WITHOUT ROWID;
CREATE INDEX inbox_by_run ON inbox (workflow_id);
"""
    + _REQUESTS
)

#: What brings a file of an earlier schema version to the next one, applied in one
#: transaction when the file is opened (only ever adding: nothing stored is rewritten).
UPGRADES: dict[int, str] = {
    # 2 -> 3: requests (cancels, early messages) for runs another process drives.
    2: _REQUESTS,
}

RUN_COLUMNS = (
    "workflow_id, flow, start, status, owner, token, lease_expires, owed, created_at, "
    "updated_at, finished_at, output, error, compensation_error, recoveries, recovery_step, "
    "shape, parked_reason"
)
