"""An OTP login whose every end is a business outcome: `LoggedIn | LoginRefused | LoginExpired`.

A code is issued, stored and sent; the flow waits for the code the user enters, at most
five minutes (the timeout outcome `CodeExpired`); a wrong code and an expired one refuse the
login, and the run still COMPLETES. `python -m examples.otp_login` runs each path under both
runners on the virtual clock.
"""

from .flow import (
    CODE_TTL,
    CodeEntered,
    CodeExpired,
    Codes,
    CodeStore,
    LoggedIn,
    LoginExpired,
    LoginRefused,
    LoginRequested,
    OtpLogin,
    SessionBook,
    Sessions,
    Sms,
    SmsGateway,
)

__all__ = [
    "CODE_TTL",
    "CodeEntered",
    "CodeExpired",
    "CodeStore",
    "Codes",
    "LoggedIn",
    "LoginExpired",
    "LoginRefused",
    "LoginRequested",
    "OtpLogin",
    "SessionBook",
    "Sessions",
    "Sms",
    "SmsGateway",
]
