"""One participant action wired for a choreography: the plans its attempts and undo use."""

from __future__ import annotations

from typing import Any

from coordination._attempts import ActionPlan, invoker, output_check, undo_check
from coordination._graph import ActionNode

__all__ = ["Wired"]


class Wired:
    """One action of one participant, with the plans its attempts and undo use."""

    __slots__ = ("backward", "forward", "node")

    def __init__(self, node: ActionNode) -> None:
        self.node = node
        declared: Any = node.declared
        self.forward = ActionPlan(
            declared,
            node.key,
            declared.retry,
            declared.timeout,
            None,
            None,
            invoker(node.participant, declared.name, node.signature),
            output_check(node.signature),
        )
        self.backward: ActionPlan | None = None
        compensation: Any = node.compensation
        if compensation is not None:
            signature = compensation.signature
            self.backward = ActionPlan(
                compensation,
                f"{node.key}:undo",
                compensation.retry,
                compensation.timeout,
                None,
                node.key,
                invoker(node.participant, compensation.name, signature),
                undo_check(signature),
            )
