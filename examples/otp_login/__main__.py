"""`python -m examples.otp_login`: a right code, a wrong one, none at all; both runners."""

from __future__ import annotations

from typing import Any

from coordination.choreography import Choreography, EventBus
from coordination.testing import VirtualClock

from .flow import (
    CODE_TTL,
    CodeEntered,
    CodeStore,
    LoginRequested,
    OtpLogin,
    SessionBook,
    SmsGateway,
)

#: (user, what they type: the code they were sent, a wrong one, or nothing)
PATHS = [("ada", "right"), ("bob", "wrong"), ("cy", None)]


def main() -> int:
    for mode in ("orchestration", "choreography"):
        clock = VirtualClock()
        codes, sms, sessions = CodeStore(), SmsGateway(), SessionBook()
        runner: Any
        if mode == "orchestration":
            runner = OtpLogin(codes, sms, sessions, clock=clock)
        else:
            runner = Choreography(
                EventBus(clock=clock), codes, sms, sessions, flow=OtpLogin, clock=clock
            )
        for user, typed in PATHS:
            request = LoginRequested(user=user, phone="+44 20 7946 0000")
            if mode == "orchestration":
                runner.run(request, workflow_id=f"login-{user}")
            else:
                runner.publish(request, correlation_id=f"login-{user}")
            if typed is None:
                continue
            code = codes.outbox[user] if typed == "right" else "000000x"
            if mode == "orchestration":
                runner.send(f"login-{user}", CodeEntered(code=code))
            else:
                runner.publish(CodeEntered(code=code), correlation_id=f"login-{user}")
        clock.advance(CODE_TTL.total_seconds())
        runner.resume_due()  # cy never typed: the code expired
        for user, _ in PATHS:
            if mode == "orchestration":
                run = runner.get(f"login-{user}")
                print(f"{mode:13} {user:4} {run.status.name:9} {run.output!r}")
            else:
                view = runner.monitor.get(f"login-{user}")
                print(f"{mode:13} {user:4} {view.status.name:9} {view.done[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
