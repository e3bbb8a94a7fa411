"""A worker process for the kill -9 tests of scheduled messages, scheduled starts and
timeout outcomes.

python -m tests.crash.scheduled_worker STORE EFFECTS COUNT [--mode orchestration|choreography]

Each chain `sub-<n>:0` opens a trial that schedules its own `TrialOver` (a real, short
durable timer), waits for it, renews, then waits for a `Paid` nobody sends: past its
timeout the wait completes with the timeout outcome `Lapsed`, and the lapse notice of
period 0 schedules period 1's start (`workflow_id="sub-<n>:1"`), which runs the same way
and schedules nothing more. The worker recovers what a killed predecessor left, starts
every chain (idempotent), then fires what is due until every period completed.
"""

from __future__ import annotations

import argparse
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

from coordination import Context, Event, Participant, Retry, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus
from coordination.orchestration import Orchestrator, parallel, step, wait
from coordination.stores import SQLiteStore
from tests.crash.shop import Effects

#: The timers: long enough that kills land while chains wait.
DELAY = 0.05
#: The periods of each chain.
PERIODS = 2


class Opened(Event, type_name="tests.crash.sched.Opened"):
    n: int
    period: int


class Trial(Event, type_name="tests.crash.sched.Trial"):
    n: int
    period: int


class TrialOver(Event, type_name="tests.crash.sched.TrialOver"):
    n: int


class Renewed(Event, type_name="tests.crash.sched.Renewed"):
    n: int
    period: int


class Paid(Event, type_name="tests.crash.sched.Paid"):
    n: int


class Lapsed(Event, type_name="tests.crash.sched.Lapsed"):
    reason: str = "no payment came"


class Welcomed(Event, type_name="tests.crash.sched.Welcomed"):
    n: int


class Noticed(Event, type_name="tests.crash.sched.Noticed"):
    n: int


class Accounts(Participant):
    @action(retry=Retry(attempts=3))
    @abstractmethod
    def open(self, opened: Opened, ctx: Context) -> Trial: ...


class Billing(Participant):
    @action(retry=Retry(attempts=3))
    @abstractmethod
    def renew(self, trial: Trial, over: TrialOver, ctx: Context) -> Renewed: ...


class Mail(Participant):
    @action(retry=Retry(attempts=3))
    @abstractmethod
    def welcome(self, renewed: Renewed, paid: Paid, ctx: Context) -> Welcomed: ...

    @action(retry=Retry(attempts=3))
    @abstractmethod
    def lapse(self, renewed: Renewed, lapsed: Lapsed, ctx: Context) -> Noticed: ...


class Chain(Orchestrator[Opened, Welcomed | Noticed], name="tests.crash.chain"):
    steps = (
        step(Accounts.open),
        wait(TrialOver),
        step(Billing.renew),
        wait(Paid | Lapsed, timeout=DELAY, on_timeout=Lapsed),
        parallel(step(Mail.welcome), step(Mail.lapse)),
    )


def chain_id(n: int, period: int) -> str:
    return f"sub-{n}:{period}"


class DurableAccounts(Accounts):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def open(self, opened: Opened, ctx: Context) -> Trial:
        ctx.schedule(TrialOver(n=opened.n), after=DELAY)
        self.effects.apply(ctx, "open")
        return Trial(n=opened.n, period=opened.period)


class DurableBilling(Billing):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def renew(self, trial: Trial, over: TrialOver, ctx: Context) -> Renewed:
        self.effects.apply(ctx, "renew")
        return Renewed(n=trial.n, period=trial.period)


class DurableMail(Mail):
    def __init__(self, effects: Effects) -> None:
        self.effects = effects

    def welcome(self, renewed: Renewed, paid: Paid, ctx: Context) -> Welcomed:
        self.effects.apply(ctx, "welcome")
        return Welcomed(n=renewed.n)

    def lapse(self, renewed: Renewed, lapsed: Lapsed, ctx: Context) -> Noticed:
        following = renewed.period + 1
        if following < PERIODS:
            ctx.schedule(
                Opened(n=renewed.n, period=following),
                after=DELAY,
                workflow_id=chain_id(renewed.n, following),
            )
        self.effects.apply(ctx, "lapse")
        return Noticed(n=renewed.n)


def participants(effects: Effects) -> tuple[Participant, ...]:
    return (DurableAccounts(effects), DurableBilling(effects), DurableMail(effects))


def runner(store: SQLiteStore, effects: Effects, mode: str) -> Any:
    if mode == "choreography":
        return Choreography(EventBus(), *participants(effects), flow=Chain, store=store)
    return Chain(*participants(effects), store=store)


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
    flow.recover()
    for n in range(args.count):
        if args.mode == "choreography":
            flow.publish(Opened(n=n, period=0), correlation_id=chain_id(n, 0))
        else:
            flow.run(Opened(n=n, period=0), workflow_id=chain_id(n, 0))
    ids = [chain_id(n, period) for n in range(args.count) for period in range(PERIODS)]
    while any(status(flow, workflow_id) is not WorkflowStatus.COMPLETED for workflow_id in ids):
        flow.resume_due()
        flow.recover()
        time.sleep(0.005)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
