"""The SQLite store's schema and how values are written into it (JSON, never pickle)."""

from __future__ import annotations

import json
from typing import Any

from coordination._messages import to_json
from coordination.errors import CompensationFailed, StepFailed

__all__ = [
    "APPLICATION",
    "RUN_COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "decode_error",
    "encode_error",
    "encode_output",
]

SCHEMA_VERSION = 1
APPLICATION = "coordination"

SCHEMA = """
CREATE TABLE coordination_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    workflow_id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    start TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    lease_expires REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    output TEXT,
    error TEXT,
    compensation_error TEXT,
    recoveries INTEGER NOT NULL DEFAULT 0,
    recovery_step TEXT,
    shape TEXT
) WITHOUT ROWID;
CREATE INDEX runs_by_flow_status ON runs (flow, status);
CREATE TABLE steps (
    workflow_id TEXT NOT NULL REFERENCES runs (workflow_id),
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    output TEXT,
    error TEXT,
    rows TEXT NOT NULL,
    PRIMARY KEY (workflow_id, key)
) WITHOUT ROWID;
"""

RUN_COLUMNS = (
    "workflow_id, flow, start, status, owner, lease_expires, created_at, updated_at, "
    "finished_at, output, error, compensation_error, recoveries, recovery_step, shape"
)


def encode_output(output: Any) -> str | None:
    if output is None:
        return None
    if isinstance(output, tuple):
        return json.dumps([json.loads(to_json(member)) for member in output])
    return to_json(output)


def encode_error(error: BaseException | None) -> str | None:
    if error is None:
        return None
    document: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    for attribute in ("step", "compensation", "attempts"):
        if hasattr(error, attribute):
            document[attribute] = getattr(error, attribute)
    return json.dumps(document)


def decode_error(text: str | None) -> BaseException | None:
    if text is None:
        return None
    document = json.loads(text)
    if document.get("type") == "CompensationFailed":
        return CompensationFailed(
            document["message"],
            step=document.get("step", ""),
            compensation=document.get("compensation", ""),
            attempts=document.get("attempts", 0),
        )
    return StepFailed(
        document["message"], step=document.get("step", ""), attempts=document.get("attempts", 0)
    )
