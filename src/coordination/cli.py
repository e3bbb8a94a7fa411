"""The `coordination` command (extra `cli`): the demo, flow graphs, lint, and stored runs.

    coordination demo [--mode orchestration|choreography|both] [--fail payments.charge] [--db F]
    coordination graph MODULE:OBJECT [--format mermaid|dot] [--run ID --db FILE]
    coordination lint MODULE:OBJECT
    coordination runs list|show --db FILE [--json]
    coordination runs recover|retry|cancel MODULE:OBJECT ... --db FILE [--json]
    coordination worker MODULE:OBJECT [--db FILE | --dsn URL [--schema S]] [--workers N]

`MODULE:OBJECT` is imported with the current directory on the import path (as uvicorn and
celery do): an Orchestrator subclass or instance, a Choreography, a list of participants,
or a zero-argument factory returning one. `runs list|show` read the file as it is: stored
messages are shown by type name and raw JSON, never imported. Every failure is one line on
stderr and a non-zero exit (2 for bad arguments), never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from coordination._status import WorkflowStatus
from coordination.choreography import Choreography
from coordination.observe import graph as flow_graph
from coordination.observe import lint as flow_lint
from coordination.observe import timeline
from coordination.orchestration import Orchestrator
from coordination.stores import MemoryStore, PostgresStore, SQLiteStore
from coordination.stores._sqlite_raw import RawRun, read_run, read_runs

__all__ = ["app", "main"]

F = TypeVar("F", bound=Callable[..., Any])


class _OneLineErrors(TyperGroup):
    """Bad arguments as one line (`error: ...`, exit 2), not a usage box."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(1)
        except typer.TyperException as error:  # usage errors: bad option, missing argument
            describe = getattr(error, "format_message", None)
            text = describe() if callable(describe) else str(error)
            typer.echo(f"error: {' '.join(str(text).split())}", err=True)
            sys.exit(getattr(error, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Run the bundled demo, draw and lint flows, and look after stored runs.",
)
runs_app = typer.Typer(help="The runs of a SQLite store.")
app.add_typer(runs_app, name="runs")


def _console() -> Console:
    """Rich output, as wide as the terminal; 120 columns when piped (rich's 80 wraps tables)."""
    return Console(width=None if sys.stdout.isatty() else 120)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _one_line(command: F) -> F:
    """Any failure of `command` becomes one line on stderr and exit 1."""

    @functools.wraps(command)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.TyperException):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as error:  # the promise: one line, never a traceback
            text = str(error).strip().splitlines()
            _fail(f"{type(error).__name__}: {text[0]}" if text else type(error).__name__)

    return guarded  # type: ignore[return-value]


# -- loading what the user names ------------------------------------------------------------


def _cwd_on_path() -> None:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))


def _import(target: str) -> Any:
    """The object `MODULE:OBJECT` names, imported with the current directory on the path."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        _fail(f"{target!r} is not MODULE:OBJECT (like examples.ecommerce:PlaceOrder)", 2)
    _cwd_on_path()
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        _fail(f"cannot import {module_name}: {error}", 2)
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            _fail(f"{module_name} has no {attribute!r}", 2)
    return found


def _flow(target: str) -> Any:
    """What graph() and lint() take, from `MODULE:OBJECT` (a factory is called)."""
    found = _import(target)
    if isinstance(found, Orchestrator):
        return type(found)
    if isinstance(found, type | Choreography | list | tuple):
        return found
    if callable(found):
        made = found()
        return type(made) if isinstance(made, Orchestrator) else made
    return found


@contextlib.contextmanager
def _runner(target: str, db: Path) -> Iterator[Any]:
    """An Orchestrator or Choreography on the store `--db` names; its store closed after
    (its heartbeat and checkpointer threads end with the command)."""
    made = _made(target, db)
    try:
        yield made
    finally:
        made.store.close()


def _made(target: str, db: Path) -> Any:
    return _built(
        target,
        lambda: SQLiteStore(db),
        lambda store: isinstance(store, SQLiteStore) and store.path.resolve() == db.resolve(),
        str(db),
        "--db",
    )


def _built(
    target: str,
    open_store: Callable[[], Any] | None,
    chosen: Callable[[Any], bool],
    where: str,
    option: str,
) -> Any:
    """The orchestrator or choreography `MODULE:OBJECT` names, on the store `open_store`
    makes (a factory taking `store=` is given it; anything else must already use it)."""
    found = _import(target)
    opened: Any = None
    if isinstance(found, type) or not callable(found):
        made = found
    else:
        parameters = inspect.signature(found).parameters
        if open_store is not None and "store" in parameters:
            opened = open_store()
            try:
                made = found(store=opened)
            except BaseException:
                opened.close()
                raise
        else:
            made = found()
    if opened is not None and getattr(made, "store", None) is not opened:
        opened.close()  # the factory did not use it
    if not isinstance(made, Orchestrator | Choreography):
        _fail(f"{target} is not an orchestrator or a choreography (nor a factory of one)", 2)
    if open_store is not None and not (
        made.store is opened if opened is not None else chosen(made.store)
    ):
        _fail(
            f"{target} keeps its runs in {made.store!r}, not in {where}; name a factory taking "
            f"store= so that {option} can choose the store",
            2,
        )
    return made


def _existing(db: Path) -> Path:
    if not db.is_file():
        _fail(f"{db} does not exist (or is not a file)", 2)
    return db


# -- demo -----------------------------------------------------------------------------------


class Mode(StrEnum):
    orchestration = "orchestration"
    choreography = "choreography"
    both = "both"


class Format(StrEnum):
    mermaid = "mermaid"
    dot = "dot"


def _shop_example() -> Any:
    """The bundled e-commerce example: inside the package in a wheel, else the checkout's."""
    _cwd_on_path()
    for name in ("coordination._examples.ecommerce", "examples.ecommerce"):
        try:
            importlib.import_module(name)
            return importlib.import_module(f"{name}.demo")
        except ModuleNotFoundError as missing:
            if missing.name is None or not name.startswith(missing.name):
                raise
    _fail("the bundled example is not installed: run from a checkout, or install the wheel")


def _failing(example: Any, target: str | None) -> tuple[str, str] | None:
    """`participant.action` of `--fail` as (service attribute, method), checked."""
    if target is None:
        return None
    services = {
        "payments": example.Payments,
        "sellers": example.Sellers,
        "logistics": example.Logistics,
        "notifications": example.Notifications,
    }
    known = [
        f"{name}.{method}"
        for name, interface in services.items()
        for method in interface.__coordination_declared__
    ]
    participant, _, method = target.lower().partition(".")
    if f"{participant}.{method}" not in known:
        _fail(f"--fail {target}: no such participant action; one of {', '.join(known)}", 2)
    return participant, method


@app.command()
@_one_line
def demo(
    mode: Annotated[Mode, typer.Option(help="which runner(s) run the order")] = Mode.both,
    fail: Annotated[
        str | None, typer.Option(help="make this action fail for good, e.g. sellers.reserve_stock")
    ] = None,
    db: Annotated[Path | None, typer.Option(help="keep the runs in this SQLite file")] = None,
) -> None:
    """Run the bundled e-commerce order and show its timeline, for each runner."""
    shop_demo = _shop_example()
    example = sys.modules[shop_demo.__name__.rsplit(".", 1)[0]]
    failing = _failing(example, fail)
    from coordination import NonRetryable
    from coordination.choreography import EventBus

    console = _console()
    number = 1 + (len(read_runs(db)) if db is not None and db.is_file() else 0)
    modes = [Mode.orchestration, Mode.choreography] if mode is Mode.both else [mode]
    for chosen in modes:
        shop = shop_demo.Shop()
        if failing is not None:
            service = getattr(shop, failing[0])
            service.fail(failing[1], NonRetryable(f"made to fail by --fail {fail}"))
        store = SQLiteStore(db) if db is not None else None
        order = shop_demo.GOOD_ORDER
        services = (shop.payments, shop.sellers, shop.logistics, shop.notifications)
        if chosen is Mode.orchestration:
            workflow_id = f"order-{number}"
            view: Any = example.PlaceOrder(*services, store=store).run(
                order, workflow_id=workflow_id
            )
        else:
            workflow_id = f"order-{number}-choreography"
            flow = Choreography(EventBus(), *services, flow=example.PlaceOrder, store=store)
            flow.publish(order, correlation_id=workflow_id)
            view = flow.monitor.get(workflow_id)
        console.rule(f"{chosen.value}: {workflow_id}")
        console.print(timeline(view))
        if db is not None:
            console.print(f"kept in {db} as {workflow_id}")
        if store is not None:
            store.close()


# -- graph and lint -------------------------------------------------------------------------


@app.command()
@_one_line
def graph(
    target: Annotated[str, typer.Argument(metavar="MODULE:OBJECT")],
    format: Annotated[Format, typer.Option("--format", help="the output syntax")] = Format.mermaid,
    run: Annotated[str | None, typer.Option(help="draw this stored run on the graph")] = None,
    db: Annotated[Path | None, typer.Option(help="the SQLite file --run is in")] = None,
) -> None:
    """Print a flow's graph as Mermaid or DOT, optionally with a stored run drawn on it."""
    flow = _flow(target)
    drawn: RawRun | None = None
    if run is not None:
        if db is None:
            _fail("--run needs --db, the file the run is in", 2)
        drawn = read_run(_existing(db), run)
        if drawn is None:
            _fail(f"no run {run!r} in {db}")
    diagram = flow_graph(flow, run=drawn)
    typer.echo(diagram.mermaid() if format is Format.mermaid else diagram.dot(), nl=False)


@app.command()
@_one_line
def lint(target: Annotated[str, typer.Argument(metavar="MODULE:OBJECT")]) -> None:
    """Check a flow's wiring; exit 1 when there is any finding (for CI)."""
    findings = flow_lint(_flow(target))
    for finding in findings:
        typer.echo(f"{', '.join(finding.subjects)}: {finding}")
    if findings:
        raise typer.Exit(1)
    typer.echo(f"{target}: no findings")


# -- runs -----------------------------------------------------------------------------------

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

DbOption = Annotated[Path, typer.Option("--db", help="the SQLite store")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    match = _SINCE.match(text)
    if match:
        return time.time() - float(match[1]) * _UNITS[match[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--since {text!r}: give a duration (30m, 2h, 7d) or an ISO date", 2)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _summary(run: RawRun) -> dict[str, Any]:
    return {
        "workflow_id": run.workflow_id,
        "flow": run.flow,
        "status": run.status.value,
        "start_type": run.start_type,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
    }


@runs_app.command("list")
@_one_line
def runs_list(
    db: DbOption,
    status: Annotated[str | None, typer.Option(help="only runs in this status")] = None,
    flow: Annotated[str | None, typer.Option(help="only runs of this flow")] = None,
    since: Annotated[
        str | None, typer.Option(help="only runs started since: 30m, 2h, 7d or an ISO date")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the runs kept in a SQLite store, oldest first."""
    chosen: WorkflowStatus | None = None
    if status is not None:
        try:
            chosen = WorkflowStatus(status.lower())
        except ValueError:
            names = ", ".join(s.value for s in WorkflowStatus)
            _fail(f"--status {status!r}: one of {names}", 2)
    found = read_runs(_existing(db), flow=flow, status=chosen, since=_since(since))
    if as_json:
        typer.echo(json.dumps([_summary(run) for run in found], indent=2))
        return
    # Plain columns, never truncated: ids are what an operator copies into the next command.
    rows = [("WORKFLOW ID", "FLOW", "STATUS", "STARTED BY", "CREATED", "UPDATED")]
    for run in found:
        when = (_when(run.created_at), _when(run.updated_at))
        rows.append((run.workflow_id, run.flow, run.status.name, run.start_type, *when))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())
    typer.echo(f"{len(found)} runs in {db}")


@runs_app.command("show")
@_one_line
def runs_show(
    workflow_id: Annotated[str, typer.Argument(metavar="ID")],
    db: DbOption,
    as_json: JsonOption = False,
) -> None:
    """Show one stored run: what started it, how it stands, and its timeline."""
    run = read_run(_existing(db), workflow_id)
    if run is None:
        _fail(f"no run {workflow_id!r} in {db}")
    if as_json:
        typer.echo(json.dumps(run.as_json(), indent=2))
        return
    console = _console()
    console.print(f"[bold]{run.workflow_id}[/bold] ({run.flow}): {run.status.name}", markup=True)
    console.print(f"started by {run.start_type}: {run.start}", markup=False)
    if run.error:
        console.print(f"error: {run.error}", markup=False)
    if run.parked_reason:
        console.print(f"parked: {run.parked_reason}", markup=False)
    console.print(timeline(run))


def _report(found: list[Any], as_json: bool) -> None:
    rows = [{"workflow_id": v.workflow_id, "status": v.status.value} for v in found]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['workflow_id']}: {row['status']}")
    if not rows:
        typer.echo("nothing to do")


@runs_app.command("recover")
@_one_line
def runs_recover(
    target: Annotated[str, typer.Argument(metavar="MODULE:OBJECT")],
    db: DbOption,
    as_json: JsonOption = False,
) -> None:
    """Resume the runs a stopped process left unfinished (for that flow)."""
    with _runner(target, _existing(db)) as runner:
        _report(runner.recover(), as_json)


def _operate(target: str, db: Path, action: str, workflow_id: str, as_json: bool) -> None:
    with _runner(target, _existing(db)) as runner:
        # Both runners have the operator's retry and cancel (the engine's rules).
        found = getattr(runner, action)(workflow_id)
        _report([found], as_json)
        if action == "cancel" and not as_json and not found.status.finished:
            # Another live process drives it: a cancel request was left for it.
            typer.echo(
                f"{workflow_id} is driven by another process: it stops at its next step "
                f"boundary and is undone there"
            )


@runs_app.command("retry")
@_one_line
def runs_retry(
    target: Annotated[str, typer.Argument(metavar="MODULE:OBJECT")],
    workflow_id: Annotated[str, typer.Argument(metavar="ID")],
    db: DbOption,
    as_json: JsonOption = False,
) -> None:
    """Go on with a PARKED or COMPENSATION_FAILED run, to its end."""
    _operate(target, db, "retry", workflow_id, as_json)


@runs_app.command("cancel")
@_one_line
def runs_cancel(
    target: Annotated[str, typer.Argument(metavar="MODULE:OBJECT")],
    workflow_id: Annotated[str, typer.Argument(metavar="ID")],
    db: DbOption,
    as_json: JsonOption = False,
) -> None:
    """Stop an unfinished run and undo what it did."""
    _operate(target, db, "cancel", workflow_id, as_json)


# -- worker ---------------------------------------------------------------------------------


@app.command()
@_one_line
def worker(
    target: Annotated[str, typer.Argument(metavar="MODULE:OBJECT")],
    db: Annotated[Path | None, typer.Option(help="serve the runs of this SQLite file")] = None,
    dsn: Annotated[
        str | None, typer.Option(help="serve the runs of this PostgreSQL database (a URL)")
    ] = None,
    schema: Annotated[str, typer.Option(help="the store's schema, with --dsn")] = "coordination",
    workers: Annotated[int, typer.Option(help="worker loops in this process")] = 1,
    poll: Annotated[float, typer.Option(help="seconds between looks when idle")] = 1.0,
) -> None:
    """Run a flow's submitted runs, fire its due timers and take over dead owners' runs,
    until SIGINT or SIGTERM (it finishes what it is doing, then exits 0)."""
    if db is not None and dsn is not None:
        _fail("give --db FILE or --dsn URL, not both", 2)
    if workers < 1:
        _fail(f"--workers {workers}: at least 1", 2)
    if not poll > 0:
        _fail(f"--poll {poll}: seconds > 0", 2)
    if dsn is not None:
        url = dsn
        runner = _built(
            target, lambda: PostgresStore(url, schema=schema), lambda store: False,
            "the --dsn database", "--dsn",
        )  # fmt: skip
    elif db is not None:
        runner = _made(target, db)
    else:
        runner = _built(target, None, lambda store: True, "", "")
        if isinstance(runner.store, MemoryStore):
            _fail(
                f"{target} keeps its runs in memory, where no other process can submit any; "
                f"give --db FILE or --dsn URL (and a factory taking store=)",
                2,
            )
    try:
        _serve_until_signalled(runner, workers, poll)
    finally:
        runner.store.close()


def _serve_until_signalled(runner: Any, workers: int, poll: float) -> None:
    """`serve()` until SIGINT or SIGTERM: the signal only sets the stop, so each worker
    loop ends between two runs, never inside one."""
    stop = threading.Event()

    def stopping(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        typer.echo(
            f"serving {runner.name} from {runner.store!r} with {workers} worker(s); "
            f"stop with Ctrl-C or SIGTERM",
            err=True,
        )
        runner.serve(workers=workers, poll=poll, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    typer.echo("stopped", err=True)


def main() -> None:
    """The console script's entry point."""
    app()
