"""Orchestration: one central `Orchestrator` runs a flow's steps and undoes them on failure."""

from coordination._lifecycle import LIFECYCLE, lifecycle_mermaid
from coordination.engine import FlowPlan, Parallel, Step, parallel, sleep, step, wait
from coordination.orchestration._orchestrator import Orchestrator
from coordination.orchestration._run import WorkflowRun

__all__ = [
    "LIFECYCLE",
    "FlowPlan",
    "Orchestrator",
    "Parallel",
    "Step",
    "WorkflowRun",
    "lifecycle_mermaid",
    "parallel",
    "sleep",
    "step",
    "wait",
]
