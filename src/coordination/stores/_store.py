"""The store protocols: what both runners need from persistence, and nothing more.

`Store` keeps flow instances — orchestrated runs and choreographed instances alike, one row
each plus appended step records. `EventLog` adds what a durable choreography needs: the
outbox of published envelopes and the inbox of handled deliveries. Backends (memory,
SQLite, PostgreSQL) are siblings behind these protocols, as eventsourcing's recorders are,
and prove it with the shipped contract suites (`coordination.testing.StoreContract`,
`EventLogContract`).

The contract, in short:

- **Atomic starts.** `start_run` (and `start_many`, a batch in one commit) inserts if
  absent: two callers never both create a run.
- **Claims and fencing.** The creator holds token 1; every claim (`claim_run`) increments
  the token, and every write carries the token it was made under. A write whose token is no
  longer the run's is refused as a whole (`LeaseLost`): a superseded owner can never mix its
  records with the new owner's.
- **One write, one commit.** A `Write` (records, a status move or the end, outbox events,
  inbox marks) is applied whole or not at all; `write_many` applies several in one commit
  (batches, group commit), refusing only the fenced-out ones.
- **The owed-work index.** `owed_runs` lists, without decoding anything, the runs that are
  unfinished or owe an undo: recovery never reads finished runs.
- **Requests.** An operator's cancel or an early outside message for a run another process
  drives is kept (`request`) until that owner, or the next one, carries it out.
- **Reading never imports**, and is never stale: `get_run` reads what the store holds now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from coordination._messages import Envelope, Message
from coordination._status import WorkflowStatus
from coordination.stores._records import DeadLetter, OwedRun, Request, RunRecord, Write

__all__ = ["EventLog", "Store", "WorkQueue"]


@runtime_checkable
class Store(Protocol):
    """Persistence for flow instances (orchestrated runs and choreographed instances)."""

    #: Seconds a claim holds a run before another process may take it over.
    lease: float

    def register_types(self, types: Iterable[type[Message]]) -> None:
        """Learn the message types a flow's runs hold, so they can be read back by name.

        Runners call it when they are built; a durable store raises `StoreError` here for a
        type it could not read back, before anything is stored.
        """
        ...

    def start_run(
        self,
        workflow_id: str,
        flow: str,
        start: Message,
        *,
        owner: str,
        now: float,
        shape: str | None = None,
        events: Sequence[Envelope[Message]] = (),
    ) -> tuple[RunRecord, int | None]:
        """Create run `workflow_id` owned by `owner`, or return the one already there.

        Returns `(record, token)`: the claim token (1) when this call created it, None when
        the run existed. Atomic: two callers never both create it. `events` (a
        choreography's start envelope) are appended to the outbox in the same commit.
        """
        ...

    def start_many(
        self,
        flow: str,
        starts: Sequence[tuple[str, Message]],
        *,
        owner: str,
        now: float,
        shape: str | None = None,
    ) -> list[tuple[RunRecord, int | None]]:
        """Start several runs of `flow`, `(workflow_id, start message)` each, in one commit.

        Each is like `start_run`: `(record, 1)` for a run this call created, `(stored record,
        None)` for one that existed. A message that cannot be stored raises `StoreError`
        before anything is written.
        """
        ...

    def claim_run(
        self,
        workflow_id: str,
        owner: str,
        *,
        now: float,
        replacing: str | None = None,
        reopen: tuple[WorkflowStatus, WorkflowStatus] | None = None,
    ) -> int | None:
        """Make `owner` the owner of a run; its new fencing token, or None if refused.

        Without `reopen`, claims a run that owes work (see `owed_runs`) and that nobody
        owns, whose lease expired before `now`, or whose owner is `replacing` (known to be
        gone). With `reopen=(expected, status)` (operators), claims a run in `expected`
        nobody else owns and moves it to `status`, clearing its end and recovery count.
        Atomic: of two callers at most one gets a token.
        """
        ...

    def write(self, write: Write) -> None:
        """Apply one write in one commit; `LeaseLost` if its token is not the run's.

        A record key already appended to the run raises `StoreError` and nothing of the
        write is applied.
        """
        ...

    def write_many(self, writes: Sequence[Write]) -> list[str]:
        """Apply several writes in one commit; the ids of runs whose write was fenced out.

        The fenced-out writes are not applied; the others are.
        """
        ...

    def release_run(self, workflow_id: str, token: int, *, now: float) -> None:
        """Give up ownership of an unfinished run (nothing happens if `token` is stale)."""
        ...

    def note_recovery(self, workflow_id: str, token: int, position: str) -> int:
        """Count a recovery at `position`; how many recoveries in a row were there."""
        ...

    def request(self, workflow_id: str, message: Message | None, *, now: float) -> bool:
        """Keep a request for an unfinished run another process may be driving: a cancel
        (`message` None) or an outside message; False (nothing kept) if the run is unknown
        or finished. Not fenced: the caller does not own the run. Its owner reads it at a
        step boundary (`requests`), carries it out, then drops it (`drop_requests`)."""
        ...

    def requests(self, workflow_id: str) -> list[Request]:
        """The run's requests not dropped yet, oldest first."""
        ...

    def drop_requests(self, workflow_id: str, token: int, upto: int) -> None:
        """Drop the run's requests numbered up to `upto`, carried out by their owner;
        `LeaseLost` if `token` is not the run's (the new owner carries them out instead)."""
        ...

    def get_run(self, workflow_id: str) -> RunRecord | None:
        """The run `workflow_id` as stored now, or None."""
        ...

    def list_runs(
        self, *, flow: str | None = None, status: WorkflowStatus | None = None
    ) -> list[RunRecord]:
        """Runs, oldest first, optionally only one flow's or one status's."""
        ...

    def owed_runs(self, flow: str) -> list[OwedRun]:
        """Runs of `flow` that are unfinished or owe an undo, oldest first; nothing decoded."""
        ...

    def forget_finished(self, before: float) -> int:
        """Forget runs that finished before `before` and owe nothing: COMPLETED,
        COMPENSATED and CANCELLED only (PARKED and COMPENSATION_FAILED runs still have
        effects applied). Their events and inbox marks go with them. Returns how many."""
        ...

    def close(self) -> None:
        """Release what the store holds (connections, threads)."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """The outbox and inbox of durable choreographies, beside their instances' runs.

    Envelopes are appended by `Store.start_run(events=...)` and `Write.events`, inbox marks
    by `Write.handled`: always in the same commit as the instance's own change.
    """

    def events_of(self, workflow_id: str) -> list[Envelope[Message]]:
        """The envelopes logged for one flow instance, in the order they were appended."""
        ...

    def handled_of(self, workflow_id: str) -> set[tuple[str, str]]:
        """(message id, subscriber) pairs of one instance handled or set aside."""
        ...

    def count_delivery(self, workflow_id: str, token: int, message_id: str, subscriber: str) -> int:
        """Count one more delivery of `message_id` to `subscriber`; the count so far.

        Fenced like a write (`LeaseLost`).
        """
        ...

    def dead_letter(
        self, workflow_id: str, token: int, message_id: str, subscriber: str, reason: str
    ) -> None:
        """Set a delivery aside: recovery never delivers it again (fenced like a write)."""
        ...

    def dead_letters(self) -> list[DeadLetter]:
        """Every delivery set aside, oldest first."""
        ...


@runtime_checkable
class WorkQueue(Protocol):
    """What workers need beyond `Store` to share runs without queueing behind each other.

    A capability some stores have (PostgreSQL, SQLite); `serve()` uses it when the store has
    it, for both runners, and falls back to polling `recover()` otherwise. A submitted run (or
    choreography instance) is an unowned run that owes work, so every store can hold one;
    this adds the fast claim and the wake-up. Proved by `coordination.testing`'s
    `WorkQueueContract`.
    """

    def claim_next(
        self, flow: str, owner: str, *, now: float
    ) -> tuple[str, int, str | None] | None:
        """Claim the oldest run of `flow` that owes work and that nobody holds (or whose
        lease expired), skipping runs another worker is claiming: `(workflow_id, token,
        previous owner)`.

        Atomic like `claim_run`: of two workers, at most one gets a given run.
        """
        ...

    def announce(self, flow: str) -> None:
        """Tell waiting workers (of every process) that `flow` has work."""
        ...

    def wait_for_work(self, flow: str, timeout: float) -> bool:
        """Wait until work of `flow` is announced (True) or `timeout` seconds passed."""
        ...
