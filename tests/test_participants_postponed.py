"""Participants under postponed annotations: names local to a function resolve on first use."""

from __future__ import annotations

import gc

import pytest

from coordination import Context, Event, Participant, action
from coordination.errors import DefinitionError


class Shipped(Event):
    order_id: str


def test_local_messages_and_participant_resolve() -> None:
    class Ordered(Event):
        order_id: str

    class Charged(Event):
        payment_id: str

    class Payments(Participant):
        @action
        def charge(self, order: Ordered, ctx: Context) -> Charged:
            return Charged(payment_id=f"pay-{order.order_id}")

        @charge.compensation
        def refund(self, payment: Charged) -> None: ...

    signature = Payments.charge.signature
    assert signature.inputs == (Ordered,)
    assert signature.outputs == (Charged,)
    assert signature.wants_context
    assert Payments.refund.signature.inputs == (Charged,)
    assert Payments.refund.undoes_output is True
    payments = Payments()
    assert payments.charge(Ordered(order_id="o"), Context("c", "k")) == Charged(payment_id="pay-o")


def test_module_level_and_local_names_mix() -> None:
    class Ordered(Event):
        order_id: str

    class Logistics(Participant):
        @action
        def ship(self, order: Ordered) -> tuple[Shipped]: ...

    assert Logistics.ship.signature.inputs == (Ordered,)
    assert Logistics.ship.signature.output == (Shipped,)


def test_a_class_defined_after_the_participant_resolves_on_first_use() -> None:
    class Payments(Participant):
        @action
        def charge(self, order: Later) -> Shipped: ...

    class Later(Event):
        order_id: str

    assert Payments.charge.signature.inputs == (Later,)


def test_first_use_after_the_defining_function_returned() -> None:
    def define() -> type[Participant]:
        class Payments(Participant):
            @action
            def charge(self, order: Later) -> Shipped: ...

        class Later(Event):
            order_id: str

        return Payments

    payments = define()
    gc.collect()
    (later,) = payments.charge.signature.inputs  # type: ignore[attr-defined]
    assert later.__name__ == "Later"
    assert issubclass(later, Event)


def test_a_compensation_of_an_action_naming_a_later_class_resolves_on_first_use() -> None:
    class Payments(Participant):
        @action
        def charge(self, order: Later) -> Shipped: ...

        @charge.compensation
        def refund(self, shipped: Shipped) -> None: ...

    class Later(Event):
        order_id: str

    assert Payments.refund.undoes_output is True
    assert Payments.charge.signature.inputs == (Later,)


def test_a_compensation_naming_a_later_class_resolves_on_first_use() -> None:
    class Payments(Participant):
        @action
        def charge(self, order: Later) -> Shipped: ...

        @charge.compensation
        def undo(self, order: Later) -> None: ...

    class Later(Event):
        order_id: str

    assert Payments.undo.signature.inputs == (Later,)
    assert Payments.undo.undoes_output is False


def test_a_wrong_compensation_is_still_caught_on_first_use() -> None:
    class Payments(Participant):
        @action
        def charge(self, order: Later) -> Shipped: ...

        @charge.compensation
        def undo(self, other: Other) -> None: ...

    class Later(Event):
        order_id: str

    class Other(Event):
        pass

    for _ in range(2):  # the error is not forgotten after the first access
        with pytest.raises(DefinitionError, match=r"Payments\.undo.*neither its output"):
            Payments.undo.signature  # noqa: B018


def test_an_undefined_name_is_a_definition_error_on_first_use() -> None:
    class Payments(Participant):
        @action
        def charge(self, order: NeverDefined) -> Shipped: ...  # type: ignore[name-defined]  # noqa: F821

    assert Payments.charge.qualname == "Payments.charge"
    with pytest.raises(DefinitionError, match=r"Payments\.charge.*NeverDefined") as caught:
        Payments.charge.signature  # noqa: B018
    assert isinstance(caught.value.__cause__, NameError)


def test_an_undefined_return_name_is_a_definition_error_on_first_use() -> None:
    class Ordered(Event):
        order_id: str

    class Payments(Participant):
        @action
        def charge(self, order: Ordered) -> Missing: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(DefinitionError, match="Missing"):
        Payments.charge.signature  # noqa: B018


def test_a_resolvable_mistake_is_still_caught_at_class_definition() -> None:
    class NotAMessage:
        pass

    with pytest.raises(DefinitionError, match=r"Payments\.charge.*not a message type"):

        class Payments(Participant):
            @action
            def charge(self, order: NotAMessage) -> Shipped: ...
