"""`python -m examples.recommendations`: one source slow, one down, under both runners."""

from __future__ import annotations

from typing import Any

from coordination.choreography import Choreography, EventBus

from . import (
    Recommend,
    RecommendationsReady,
    RecommendationsRequested,
    failing,
    services,
    slow,
)


def main() -> int:
    request = RecommendationsRequested(user_id="u-7", limit=4)
    for mode in ("orchestration", "choreography"):
        participants = services(trending=slow(), friends=failing())
        runner: Any
        if mode == "orchestration":
            run = Recommend(*participants).run(request, workflow_id="recs-u-7")
            status, ready = run.status, run.output
        else:
            runner = Choreography(EventBus(), *participants, flow=Recommend)
            runner.publish(request, correlation_id="recs-u-7")
            view = runner.monitor.get("recs-u-7")
            status = view.status
            ready = view.steps[-1].output
        assert isinstance(ready, RecommendationsReady), ready
        print(f"{mode}: {status.value}")
        print(f"  picks:    {', '.join(ready.picks)}")
        print(f"  answered: {', '.join(ready.answered)}")
        for degraded in ready.degraded:
            print(f"  without   {degraded}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
