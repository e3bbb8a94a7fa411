"""Flow graphs from the definitions: Mermaid flowcharts and Graphviz DOT, a run drawn on them.

Actions are boxes grouped by generation (a flow's declared groups, or those a choreography
derives from the signatures); messages are the rounded nodes between them, so a graph says
who emits which message and who reacts to it, free-form subscribers included. Each
compensation hangs off its action on a dashed edge. With `run=`, every action and undo is
coloured by what that run did with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from coordination._messages import Command, Message
from coordination.errors import UsageError
from coordination.observe._model import FlowModel, Node, model_of
from coordination.observe._timeline import timeline
from coordination.observe._view import RunView, label

__all__ = ["STATES", "FlowDiagram", "graph"]

#: What a run can say about an action or an undo, and how each is drawn (fill, border).
STATES: dict[str, tuple[str, str]] = {
    "done": ("#d4edda", "#2e7d32"),
    "failed": ("#f8d7da", "#c62828"),
    "compensated": ("#fff3cd", "#b7791f"),
    "compensation_failed": ("#f3d9fa", "#8e24aa"),
    "skipped": ("#eeeeee", "#9e9e9e"),
    "running": ("#d0ebff", "#1565c0"),
    "waiting": ("#d0ebff", "#1565c0"),
    "pending": ("#ffffff", "#9e9e9e"),
    "not_run": ("#f5f5f5", "#bdbdbd"),
}


@dataclass(frozen=True, slots=True)
class _Shape:
    """The graph's items with their ids, computed once for both syntaxes."""

    messages: dict[type[Message], str]
    actions: dict[str, str]
    undos: dict[str, str]
    subscribers: dict[str, str]


class FlowDiagram:
    """A flow's graph: `.mermaid()` (a flowchart) and `.dot()` (Graphviz)."""

    def __init__(self, model: FlowModel, states: dict[str, str] | None = None) -> None:
        self.model = model
        #: With a run: `Participant.action` (forward or undo) -> a key of `STATES`.
        self.states: dict[str, str] = dict(states or {})
        self._shape = _Shape(
            messages={m: f"m{i}" for i, m in enumerate(model.messages())},
            actions={n.key: f"a{n.index}" for n in model.nodes},
            undos={n.undo: f"c{n.index}" for n in model.nodes if n.undo},
            subscribers={
                name: f"s{i}"
                for i, name in enumerate(dict.fromkeys(s.name for s in model.subscribers))
            },
        )

    # -- what both syntaxes draw ------------------------------------------------------

    def _generations(self) -> list[tuple[int | None, list[Node]]]:
        levels = sorted({n.generation for n in self.model.nodes if n.generation is not None})
        groups: list[tuple[int | None, list[Node]]] = [
            (level, [n for n in self.model.nodes if n.generation == level]) for level in levels
        ]
        stuck = [n for n in self.model.nodes if n.generation is None]
        if stuck:
            groups.append((None, stuck))
        return groups

    def _details(self, node: Node) -> list[str]:
        details = []
        if node.pivot:
            details.append("pivot: no undo after it")
        if node.one_of:
            details.append(f"one of {len(node.outputs)} outcomes")
        if node.fans_out:
            details.append(f"fans out: many {node.outputs[0].__name__}")
        if node.mapped:
            fanned = [w for i, w in enumerate(node.inputs) if i not in node.gathers]
            names = ", ".join(w.__name__ for w in fanned[:1])
            details.append(f"mapped: once per {names}")
        for index in node.gathers:
            details.append(f"gathers every {node.inputs[index].__name__}")
        if node.is_join:
            details.append(f"join of {len(node.inputs)}")
        if node.attempts is None:
            details.append("attempts until its deadline")
        elif node.attempts != 1:
            details.append(f"{node.attempts} attempts")
        if node.timeout is not None:
            details.append(f"timeout {node.timeout:g}s")
        return details

    def _edges(self) -> Iterator[tuple[str, str, bool]]:
        """(from, to, dashed) for every edge: inputs, outputs, undos, subscribers."""
        shape = self._shape
        for node in self.model.nodes:
            action = shape.actions[node.key]
            for wanted in node.inputs:
                for made, message in shape.messages.items():
                    if made is wanted or (issubclass(made, wanted) and made not in node.inputs):
                        yield message, action, False
            for made in node.outputs:
                yield action, shape.messages[made], False
            if node.undo:
                yield action, shape.undos[node.undo], True
                for made in node.undo_outputs:
                    yield shape.undos[node.undo], shape.messages[made], True
        for subscriber in self.model.subscribers:
            yield shape.messages[subscriber.message], shape.subscribers[subscriber.name], False

    def _title(self) -> str:
        return label(self.model.name) or "flow"

    # -- Mermaid ----------------------------------------------------------------------

    def mermaid(self) -> str:
        """The graph as a Mermaid flowchart."""
        shape = self._shape
        lines = ["flowchart LR"]
        for made, ident in shape.messages.items():
            name = label(made.__name__)
            lines.append(
                f'    {ident}[["{name}"]]'
                if issubclass(made, Command)
                else f'    {ident}(["{name}"])'
            )
        for level, nodes in self._generations():
            title = f"generation {level}" if level is not None else "never runs"
            lines.append(f'    subgraph g{level or 0} ["{title}"]')
            for node in nodes:
                text = "<br/>".join([label(node.key), *map(label, self._details(node))])
                lines.append(f'        {shape.actions[node.key]}["{text}"]')
            lines.append("    end")
        for undo, ident in shape.undos.items():
            lines.append(f'    {ident}{{{{"undo: {label(undo)}"}}}}')
        for name, ident in shape.subscribers.items():
            lines.append(f'    {ident}[/"{label(name)}"/]')
        for source, target, dashed in self._edges():
            lines.append(f"    {source} {'-.->' if dashed else '-->'} {target}")
        if self.states:
            for state, (fill, stroke) in STATES.items():
                lines.append(f"    classDef {state} fill:{fill},stroke:{stroke}")
            for key, state in self.states.items():
                ident = shape.actions.get(key, shape.undos.get(key, ""))
                if ident:
                    lines.append(f"    class {ident} {state}")
        return "\n".join(lines) + "\n"

    # -- DOT --------------------------------------------------------------------------

    def _dot_style(self, key: str, form: str, *, dashed: bool = False) -> str:
        styles = ["dashed"] if dashed else []
        state = self.states.get(key)
        if state is None:
            return f'shape={form}, style="{",".join(styles)}"' if styles else f"shape={form}"
        fill, stroke = STATES[state]
        styles.append("filled")
        return f'shape={form}, style="{",".join(styles)}", fillcolor="{fill}", color="{stroke}"'

    def dot(self) -> str:
        """The graph as Graphviz DOT."""
        shape = self._shape
        lines = [
            "digraph flow {",
            "    rankdir=LR;",
            f'    label="{self._title()}"; labelloc=t;',
            '    node [fontname="Helvetica", fontsize=10];',
        ]
        for made, ident in shape.messages.items():
            form = "box3d" if issubclass(made, Command) else "oval"
            lines.append(f'    {ident} [label="{label(made.__name__)}", shape={form}];')
        for level, nodes in self._generations():
            title = f"generation {level}" if level is not None else "never runs"
            lines.append(f"    subgraph cluster_g{level or 0} {{")
            lines.append(f'        label="{title}"; style=dashed;')
            for node in nodes:
                text = "\\n".join([label(node.key), *map(label, self._details(node))])
                style = self._dot_style(node.key, "box")
                lines.append(f'        {shape.actions[node.key]} [label="{text}", {style}];')
            lines.append("    }")
        for undo, ident in shape.undos.items():
            style = self._dot_style(undo, "hexagon", dashed=True)
            lines.append(f'    {ident} [label="undo: {label(undo)}", {style}];')
        for name, ident in shape.subscribers.items():
            lines.append(f'    {ident} [label="{label(name)}", shape=parallelogram];')
        for source, target, dashed in self._edges():
            lines.append(f"    {source} -> {target}{' [style=dashed]' if dashed else ''};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"FlowDiagram({self.model.name!r}, {len(self.model.nodes)} actions)"


#: The `[i]` an item of a mapped step adds to its step's name.
_ITEM = re.compile(r"\[\d+\]$")


def _states(model: FlowModel, run: RunView) -> dict[str, str]:
    if not isinstance(run, RunView):
        raise UsageError(f"graph(run=...) takes a WorkflowRun or a ProcessView, got {run!r}")
    known = {n.key for n in model.nodes} | {n.undo for n in model.nodes if n.undo}
    # A wait or a sleep is no action of the graph (its messages are): its rows draw nothing.
    rows = [row for row in timeline(run).rows if not row.name.startswith(("wait.", "sleep."))]
    for row in rows:  # an item of a mapped step is drawn on its step's node
        row.name = _ITEM.sub("", row.name)
        if row.undoes is not None:
            row.undoes = _ITEM.sub("", row.undoes)
    strangers = [row.name for row in rows if row.name not in known]
    if strangers:
        raise UsageError(
            f"run {run.workflow_id!r} ran {', '.join(strangers)}, which this flow does not "
            f"have: draw a run on the graph of its own flow"
        )
    outcomes = {"completed": "done", "compensated": "compensated", "running": "running"}
    states: dict[str, str] = {}
    for row in rows:
        outcome = row.outcome
        if row.undoes is not None:
            states[row.name] = {"compensation_failed": "failed"}.get(outcome, outcome)
            if outcome == "compensated":
                states[row.undoes] = "compensated"
            elif outcome == "compensation_failed":
                states[row.undoes] = "compensation_failed"
        elif row.name not in states or outcome == "failed":  # one failed item: failed
            states[row.name] = outcomes.get(outcome, outcome)
    waiting = getattr(run, "waiting", None) or {}
    unreached = "not_run" if run.status.finished else "pending"
    for node in model.nodes:
        if node.key not in states:
            states[node.key] = "waiting" if node.key in waiting else unreached
    return {key: (state if state in STATES else "pending") for key, state in states.items()}


def graph(target: object, *, run: RunView | None = None) -> FlowDiagram:
    """The graph of an Orchestrator subclass, a Choreography, or participants.

    With `run=` (a `WorkflowRun` or a `ProcessView` of that flow), each action and undo is
    drawn in the state that run left it: done, failed, compensated, skipped, running,
    waiting, pending (not reached yet) or not_run (the run finished without it); an undo
    that did not run is drawn plain.
    """
    model = model_of(target)
    return FlowDiagram(model, None if run is None else _states(model, run))
