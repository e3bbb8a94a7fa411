"""The shop, property-tested with the kit's state machine: orders started, crashed, recovered.

Run by the test suite (tests/testing/test_machine.py); a user's own flow gets the same by
subclassing `FlowMachine` with its flow, its start messages and its participants.
"""

from __future__ import annotations

from collections.abc import Sequence

from coordination import Participant
from coordination.testing import FlowMachine, fake, messages

from .flow import PlaceOrder
from .messages import OrderPlaced
from .participants import Logistics, Notifications, Payments, Sellers


class ShopMachine(FlowMachine):
    """Orders through the orchestrator, any faults, crashes at any store write."""

    flow = PlaceOrder
    starts = messages(OrderPlaced)

    def participants(self) -> Sequence[Participant]:
        return [fake(Payments), fake(Sellers), fake(Logistics), fake(Notifications)]


class ChoreographedShopMachine(ShopMachine):
    """The same orders as a choreography of the same participants."""

    runner = "choreography"
