"""A worker process for the kill -9 tests of waits and timers.

python -m tests.crash.timed_worker STORE EFFECTS COUNT [--mode orchestration|choreography]

Each subscription opens an account, sleeps (a real, short durable timer), renews, then
waits for an outside `Paid` message before it welcomes the customer. The worker recovers
what a killed predecessor left, starts every subscription (idempotent), then fires due
timers and sends every `Paid` (duplicates are no-ops) until all have completed.
"""

from __future__ import annotations

import argparse
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

from coordination import Context, Event, Participant, Retry, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus
from coordination.errors import WorkflowBusy
from coordination.orchestration import Orchestrator, sleep, step, wait
from coordination.stores import SQLiteStore
from tests.crash.shop import Effects

#: The timer: long enough that kills land while subscriptions sleep.
SLEEP = 0.05


class Signup(Event, type_name="tests.crash.Signup"):
    n: int


class Trial(Event, type_name="tests.crash.Trial"):
    n: int


class Renewed(Event, type_name="tests.crash.Renewed"):
    n: int


class Paid(Event, type_name="tests.crash.Paid"):
    n: int


class Welcomed(Event, type_name="tests.crash.Welcomed"):
    n: int


class Accounts(Participant):
    @action(retry=Retry(attempts=3))
    @abstractmethod
    def open(self, signup: Signup, ctx: Context) -> Trial: ...


class Billing(Participant):
    @action(retry=Retry(attempts=3))
    @abstractmethod
    def renew(self, trial: Trial, ctx: Context) -> Renewed: ...


class Mail(Participant):
    @action(retry=Retry(attempts=3))
    @abstractmethod
    def welcome(self, renewed: Renewed, paid: Paid, ctx: Context) -> Welcomed: ...


class Subscription(Orchestrator[Signup, Welcomed], name="tests.crash.subscription"):
    steps = (
        step(Accounts.open),
        sleep(SLEEP),
        step(Billing.renew),
        wait(Paid),
        step(Mail.welcome),
    )


class DurableAccounts(Accounts):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def open(self, signup: Signup, ctx: Context) -> Trial:
        self.effects.apply(ctx, "open")
        return Trial(n=signup.n)


class DurableBilling(Billing):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def renew(self, trial: Trial, ctx: Context) -> Renewed:
        self.effects.apply(ctx, "renew")
        return Renewed(n=trial.n)


class DurableMail(Mail):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def welcome(self, renewed: Renewed, paid: Paid, ctx: Context) -> Welcomed:
        self.effects.apply(ctx, "welcome")
        return Welcomed(n=renewed.n)


def participants(effects: Effects) -> tuple[Participant, ...]:
    return (DurableAccounts(effects), DurableBilling(effects), DurableMail(effects))


def runner(store: SQLiteStore, effects: Effects, mode: str) -> Any:
    if mode == "choreography":
        return Choreography(EventBus(), *participants(effects), flow=Subscription, store=store)
    return Subscription(*participants(effects), store=store)


def status(flow: Any, workflow_id: str) -> WorkflowStatus | None:
    record = flow.store.get_run(workflow_id)
    return None if record is None else record.status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", type=Path)
    parser.add_argument("effects", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mode", choices=("orchestration", "choreography"), default="orchestration"
    )
    args = parser.parse_args(argv)
    effects = Effects(args.effects, pause=args.pause, seed=args.seed)
    flow = runner(SQLiteStore(args.store), effects, args.mode)
    chor = args.mode == "choreography"
    flow.recover()
    ids = [f"sub-{n}" for n in range(args.count)]
    for n, workflow_id in enumerate(ids):
        if chor:
            flow.publish(Signup(n=n), correlation_id=workflow_id)
        else:
            flow.run(Signup(n=n), workflow_id=workflow_id)
    while any(status(flow, workflow_id) is not WorkflowStatus.COMPLETED for workflow_id in ids):
        flow.resume_due()
        for n, workflow_id in enumerate(ids):
            if status(flow, workflow_id) is WorkflowStatus.COMPLETED:
                continue
            try:
                if chor:
                    flow.publish(Paid(n=n), correlation_id=workflow_id)
                else:
                    flow.send(workflow_id, Paid(n=n))
            except WorkflowBusy:
                pass  # a predecessor's lease: recover() takes it once it expired
        flow.recover()
        time.sleep(0.005)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
