"""An OTP login: generate and store a one-time code, send it, wait for the code entered.

The source texts' example of orchestration's synchronous side: the caller waits and gets a
value back. Every end is a business outcome, never a crash: the run COMPLETES with
`LoggedIn`, `LoginRefused` (a wrong code) or `LoginExpired` (no code within five minutes):

1. `Codes.issue` generates the code and stores it (its hash, by idempotency key: a retry
   never issues a second code);
2. `Sms.send` sends it to the phone;
3. `wait(CodeEntered | CodeExpired, timeout=CODE_TTL, on_timeout=CodeExpired)`: the user's
   entry arrives by `send()` (`publish(..., correlation_id=...)` in a choreography); five
   minutes without one, and the engine completes the wait with `CodeExpired()`;
4. `Codes.verify` checks an entered code, `-> CodeAccepted | CodeRejected`, while
   `Sessions.expire` answers an expired one;
5. `Sessions.open` opens a session for an accepted code, `Sessions.refuse` answers a
   rejected one.

`Codes.issue` is undone (`revoke`) if sending fails for good; the SMS is the pivot (a text
cannot be unsent), so the wait after it names a timeout outcome instead of failing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from abc import abstractmethod

from coordination import Context, Event, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step, wait

#: How long a code may be entered.
CODE_TTL = dt.timedelta(minutes=5)


class LoginRequested(Event, type_name="examples.otp_login.LoginRequested"):
    user: str
    phone: str


class CodeIssued(Event, type_name="examples.otp_login.CodeIssued"):
    user: str
    phone: str


class CodeSent(Event, type_name="examples.otp_login.CodeSent"):
    user: str


class CodeEntered(Event, type_name="examples.otp_login.CodeEntered"):
    """What the user typed (the outside message)."""

    code: str


class CodeExpired(Event, type_name="examples.otp_login.CodeExpired"):
    """Built by the engine when no code was entered in time: no required fields."""

    reason: str = "the code expired"


class CodeAccepted(Event, type_name="examples.otp_login.CodeAccepted"):
    user: str


class CodeRejected(Event, type_name="examples.otp_login.CodeRejected"):
    user: str
    reason: str = "wrong code"


class LoggedIn(Event, type_name="examples.otp_login.LoggedIn"):
    user: str
    session: str


class LoginRefused(Event, type_name="examples.otp_login.LoginRefused"):
    """A wrong code was entered."""

    user: str
    reason: str


class LoginExpired(Event, type_name="examples.otp_login.LoginExpired"):
    """No code was entered in time."""

    user: str
    reason: str


class Codes(Participant):
    @action(retry=Retry(attempts=3))
    @abstractmethod
    def issue(self, request: LoginRequested, ctx: Context) -> CodeIssued: ...

    @issue.compensation
    @abstractmethod
    def revoke(self, issued: CodeIssued, ctx: Context) -> None: ...

    @action
    @abstractmethod
    def verify(
        self, sent: CodeSent, entered: CodeEntered, ctx: Context
    ) -> CodeAccepted | CodeRejected: ...


class Sms(Participant):
    # A text message cannot be unsent: the point of no return. Past it, the flow only goes
    # forward (retried, never undone), so every end after it must be an outcome.
    @action(retry=Retry(attempts=3, backoff=1.0), pivot=True)
    @abstractmethod
    def send(self, issued: CodeIssued, ctx: Context) -> CodeSent: ...


class Sessions(Participant):
    @action
    @abstractmethod
    def open(self, accepted: CodeAccepted, ctx: Context) -> LoggedIn: ...

    @action
    @abstractmethod
    def refuse(self, rejected: CodeRejected) -> LoginRefused: ...

    @action
    @abstractmethod
    def expire(self, sent: CodeSent, expired: CodeExpired) -> LoginExpired: ...


class OtpLogin(
    Orchestrator[LoginRequested, LoggedIn | LoginRefused | LoginExpired], name="otp-login"
):
    """Issue, send, wait for the code (or its expiry), verify, then log in or refuse."""

    steps = (
        step(Codes.issue),
        step(Sms.send),
        wait(CodeEntered | CodeExpired, timeout=CODE_TTL, on_timeout=CodeExpired),
        parallel(step(Codes.verify), step(Sessions.expire)),
        parallel(step(Sessions.open), step(Sessions.refuse)),
    )


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class CodeStore(Codes):
    """Keeps each login's code as a hash, by idempotency key (a retry reuses the code)."""

    def __init__(self, codes: dict[str, str] | None = None) -> None:
        #: Fixed codes for tests and the demo (user -> code); else random six digits.
        self.fixed = codes or {}
        self.hashes: dict[str, str] = {}
        #: What was "sent by SMS", for the demo to read (user -> code).
        self.outbox: dict[str, str] = {}

    def issue(self, request: LoginRequested, ctx: Context) -> CodeIssued:
        if ctx.idempotency_key not in self.hashes:
            code = self.fixed.get(request.user) or f"{secrets.randbelow(10**6):06d}"
            self.hashes[ctx.idempotency_key] = _digest(code)
            self.outbox[request.user] = code
        return CodeIssued(user=request.user, phone=request.phone)

    def revoke(self, issued: CodeIssued, ctx: Context) -> None:
        self.hashes.pop(f"{ctx.correlation_id}:Codes.issue", None)  # idempotent by state

    def verify(
        self, sent: CodeSent, entered: CodeEntered, ctx: Context
    ) -> CodeAccepted | CodeRejected:
        expected = self.hashes.get(f"{ctx.correlation_id}:Codes.issue")
        if expected is not None and secrets.compare_digest(expected, _digest(entered.code)):
            return CodeAccepted(user=sent.user)
        return CodeRejected(user=sent.user)


class SmsGateway(Sms):
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, issued: CodeIssued, ctx: Context) -> CodeSent:
        if ctx.idempotency_key not in self.sent:
            self.sent.append(ctx.idempotency_key)
        return CodeSent(user=issued.user)


class SessionBook(Sessions):
    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}

    def open(self, accepted: CodeAccepted, ctx: Context) -> LoggedIn:
        session = self.sessions.setdefault(ctx.idempotency_key, secrets.token_hex(8))
        return LoggedIn(user=accepted.user, session=session)

    def refuse(self, rejected: CodeRejected) -> LoginRefused:
        return LoginRefused(user=rejected.user, reason=rejected.reason)

    def expire(self, sent: CodeSent, expired: CodeExpired) -> LoginExpired:
        return LoginExpired(user=sent.user, reason=expired.reason)
