"""Under publish_async, a choreography's sync actions run on worker threads, never the loop's."""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod

from coordination import Context, Event, Participant, WorkflowStatus, action
from coordination.choreography import Choreography, EventBus


class Asked(Event, type_name="tests.async_threads.Asked"):
    n: int


class Answered(Event, type_name="tests.async_threads.Answered"):
    n: int


class Answering(Participant):
    @action
    @abstractmethod
    def answer(self, asked: Asked, ctx: Context) -> Answered: ...


class ThreadNoting(Answering):
    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def answer(self, asked: Asked, ctx: Context) -> Answered:
        self.threads.append(threading.current_thread())
        return Answered(n=asked.n + 1)


def test_sync_actions_run_off_the_loop_under_publish_async() -> None:
    participant = ThreadNoting()
    flow = Choreography(EventBus(), participant)
    answers: list[Answered] = []
    flow.bus.subscribe(Answered, answers.append)

    async def scenario() -> tuple[threading.Thread, str]:
        envelope = await flow.publish_async(Asked(n=1))
        return threading.current_thread(), envelope.correlation_id

    loop_thread, correlation_id = asyncio.run(scenario())
    assert participant.threads
    assert participant.threads[0] is not loop_thread
    assert answers == [Answered(n=2)]
    assert flow.monitor.get(correlation_id).status is WorkflowStatus.COMPLETED
