"""Orchestration: one central `Orchestrator` runs a flow's steps and undoes them on failure."""

from coordination.orchestration._flow import FlowDefinition
from coordination.orchestration._lifecycle import LIFECYCLE, lifecycle_mermaid
from coordination.orchestration._orchestrator import Orchestrator
from coordination.orchestration._run import WorkflowRun
from coordination.orchestration._steps import Parallel, Step, parallel, step

__all__ = [
    "LIFECYCLE",
    "FlowDefinition",
    "Orchestrator",
    "Parallel",
    "Step",
    "WorkflowRun",
    "lifecycle_mermaid",
    "parallel",
    "step",
]
