"""Participants: @action, compensations, signatures read from annotations, and their checks."""

import re
from abc import abstractmethod
from typing import Any

import pytest

from coordination import Action, Compensation, Context, Event, Participant, Retry, action
from coordination._retry import COMPENSATION_DEFAULT, ONCE
from coordination._signatures import CONTEXT_ARGUMENT
from coordination.errors import DefinitionError


class OrderPlaced(Event):
    order_id: str


class PaymentCaptured(Event):
    order_id: str
    payment_id: str


class PaymentRefunded(Event):
    payment_id: str


class StockReserved(Event):
    order_id: str


class CourierAssigned(Event):
    tracking: str


class Unrelated(Event):
    pass


def _named(cls: str, method: str) -> str:
    """A regex matching an error that names `cls.method`."""
    return re.escape(f"{cls}.{method}")


# -- the happy path ------------------------------------------------------------------------


class Payments(Participant):
    @action(retry=Retry(attempts=3, backoff=0.05), timeout=2.0)
    @abstractmethod
    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured: ...

    @charge.compensation
    @abstractmethod
    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...


class FakePayments(Payments):
    def __init__(self) -> None:
        self.charged: list[str] = []

    def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
        self.charged.append(ctx.idempotency_key)
        return PaymentCaptured(order_id=order.order_id, payment_id=f"pay-{order.order_id}")

    def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded:
        return PaymentRefunded(payment_id=payment.payment_id)


def test_action_on_the_interface_is_an_action_descriptor() -> None:
    assert isinstance(Payments.charge, Action)
    assert isinstance(Payments.refund, Compensation)
    assert Payments.charge.owner is Payments
    assert Payments.charge.name == "charge"
    assert Payments.charge.qualname == "Payments.charge"
    assert Payments.charge.participant == "Payments"
    assert Payments.refund.qualname == "Payments.refund"
    assert repr(Payments.charge) == "<Action Payments.charge>"
    assert repr(Payments.refund) == "<Compensation Payments.refund>"


def test_action_with_retry_and_timeout_keeps_them() -> None:
    assert Payments.charge.retry == Retry(attempts=3, backoff=0.05)
    assert Payments.charge.timeout == 2.0


def test_implementation_methods_are_called_normally() -> None:
    payments = FakePayments()
    ctx = Context("flow-1", "flow-1:charge")
    captured = payments.charge(OrderPlaced(order_id="o-1"), ctx)
    assert captured == PaymentCaptured(order_id="o-1", payment_id="pay-o-1")
    assert payments.charged == ["flow-1:charge"]
    assert payments.refund(captured, ctx) == PaymentRefunded(payment_id="pay-o-1")


def test_interface_action_bound_to_an_instance_calls_the_function() -> None:
    class Concrete(Participant):
        @action
        def charge(self, order: OrderPlaced) -> PaymentCaptured:
            return PaymentCaptured(order_id=order.order_id, payment_id=str(id(self)))

    instance = Concrete()
    result = instance.charge(OrderPlaced(order_id="o"))
    assert result.payment_id == str(id(instance))


def test_declared_actions_are_collected_across_the_hierarchy() -> None:
    assert set(Payments.__coordination_declared__) == {"charge", "refund"}
    assert FakePayments.__coordination_declared__["charge"] is Payments.charge
    assert FakePayments.__coordination_declared__["refund"] is Payments.refund


def test_bare_action_makes_one_attempt_without_timeout() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced) -> StockReserved: ...

    assert Sellers.reserve.retry == Retry(attempts=1)
    assert Sellers.reserve.retry is ONCE
    assert Sellers.reserve.timeout is None
    assert Sellers.reserve.undo is None


def test_action_with_only_a_timeout_makes_one_attempt() -> None:
    class Sellers(Participant):
        @action(timeout=1)
        def reserve(self, order: OrderPlaced) -> StockReserved: ...

    assert Sellers.reserve.retry == Retry(attempts=1)
    assert Sellers.reserve.timeout == 1


def test_action_called_with_empty_parentheses() -> None:
    class Sellers(Participant):
        @action()
        def reserve(self, order: OrderPlaced) -> StockReserved: ...

    assert Sellers.reserve.retry == Retry(attempts=1)
    assert Sellers.reserve.timeout is None


# -- signatures ----------------------------------------------------------------------------


def test_signature_reads_input_output_and_context() -> None:
    signature = Payments.charge.signature
    assert signature.inputs == (OrderPlaced,)
    assert signature.outputs == (PaymentCaptured,)
    assert signature.output is PaymentCaptured
    assert signature.returns_tuple is False
    assert signature.arguments == (0, CONTEXT_ARGUMENT)
    assert signature.wants_context is True
    assert signature.is_async is False


def test_signature_without_context() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced) -> StockReserved: ...

    signature = Sellers.reserve.signature
    assert signature.arguments == (0,)
    assert signature.wants_context is False


def test_tuple_output() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced) -> tuple[StockReserved, CourierAssigned]: ...

    signature = Sellers.reserve.signature
    assert signature.outputs == (StockReserved, CourierAssigned)
    assert signature.output == (StockReserved, CourierAssigned)
    assert signature.returns_tuple is True


def test_single_member_tuple_output_is_still_a_tuple() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced) -> tuple[StockReserved]: ...

    assert Sellers.reserve.signature.output == (StockReserved,)
    assert Sellers.reserve.signature.returns_tuple is True


def test_none_output_is_a_terminal_action() -> None:
    class Notifications(Participant):
        @action
        def notify(self, order: OrderPlaced) -> None: ...

    signature = Notifications.notify.signature
    assert signature.outputs == ()
    assert signature.output is None
    assert signature.returns_tuple is False


def test_several_message_parameters_make_a_join() -> None:
    class Notifications(Participant):
        @action
        def confirm(
            self, courier: CourierAssigned, stock: StockReserved, order: OrderPlaced
        ) -> None: ...

    signature = Notifications.confirm.signature
    assert signature.inputs == (CourierAssigned, StockReserved, OrderPlaced)
    assert signature.arguments == (0, 1, 2)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_ctx_may_be_anywhere(position: int) -> None:
    namespace: dict[str, Any] = {}
    parameters = ["courier: CourierAssigned", "stock: StockReserved"]
    parameters.insert(position, "ctx: Context")
    exec(  # a parameter list we vary; defined with real annotations like any method
        f"def confirm(self, {', '.join(parameters)}) -> None: ...",
        {"CourierAssigned": CourierAssigned, "StockReserved": StockReserved, "Context": Context},
        namespace,
    )

    class Notifications(Participant):
        confirm = action(namespace["confirm"])

    signature = Notifications.confirm.signature
    assert signature.inputs == (CourierAssigned, StockReserved)
    expected = [0, 1]
    expected.insert(position, CONTEXT_ARGUMENT)
    assert signature.arguments == tuple(expected)
    assert signature.wants_context


def test_async_action_signature() -> None:
    class Sellers(Participant):
        @action
        async def reserve(self, order: OrderPlaced) -> StockReserved: ...

        @reserve.compensation
        async def release(self, stock: StockReserved) -> None: ...

    assert Sellers.reserve.signature.is_async is True
    assert Sellers.release.signature.is_async is True


def test_signature_is_read_once() -> None:
    assert Payments.charge.signature is Payments.charge.signature


# -- compensations -------------------------------------------------------------------------


def test_output_typed_compensation_undoes_output() -> None:
    assert Payments.charge.undo is Payments.refund
    assert Payments.refund.action is Payments.charge
    assert Payments.refund.undoes_output is True
    assert Payments.refund.signature.inputs == (PaymentCaptured,)


def test_input_typed_compensation_does_not_undo_output() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced, ctx: Context) -> StockReserved: ...

        @reserve.compensation
        def cancel(self, order: OrderPlaced, ctx: Context) -> None: ...

    assert Sellers.cancel.undoes_output is False
    assert Sellers.reserve.undo is Sellers.cancel


def test_compensation_may_take_one_input_of_a_join() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced, payment: PaymentCaptured) -> StockReserved: ...

        @reserve.compensation
        def cancel(self, payment: PaymentCaptured) -> None: ...

    assert Sellers.cancel.undoes_output is False


def test_compensation_may_take_one_member_of_a_tuple_output() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced) -> tuple[StockReserved, CourierAssigned]: ...

        @reserve.compensation
        def release(self, stock: StockReserved) -> None: ...

    assert Sellers.release.undoes_output is True


def test_compensation_default_retry_tries_hard() -> None:
    assert Payments.refund.retry == Retry(attempts=5, backoff=0.1)
    assert Payments.refund.retry is COMPENSATION_DEFAULT
    assert Payments.refund.timeout is None


def test_compensation_with_retry_and_timeout() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced) -> StockReserved: ...

        @reserve.compensation(retry=Retry(attempts=9), timeout=0.5)
        def release(self, stock: StockReserved) -> None: ...

    assert isinstance(Sellers.release, Compensation)
    assert Sellers.release.retry == Retry(attempts=9)
    assert Sellers.release.timeout == 0.5
    assert Sellers.reserve.undo is Sellers.release
    # The action's own policy is untouched.
    assert Sellers.reserve.retry == Retry(attempts=1)


def test_compensation_with_only_a_timeout_keeps_default_retry() -> None:
    class Sellers(Participant):
        @action
        def reserve(self, order: OrderPlaced) -> StockReserved: ...

        @reserve.compensation(timeout=3.0)
        def release(self, stock: StockReserved) -> None: ...

    assert Sellers.release.retry == Retry(attempts=5, backoff=0.1)
    assert Sellers.release.timeout == 3.0


# -- abstract interfaces -------------------------------------------------------------------


def test_interface_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="abstract"):
        Payments()  # type: ignore[abstract]


def test_implementation_that_forgets_an_action_fails_at_construction() -> None:
    class HalfPayments(Payments):
        def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
            return PaymentCaptured(order_id=order.order_id, payment_id="p")

    with pytest.raises(TypeError, match="refund"):
        HalfPayments()  # type: ignore[abstract]


def test_implementation_that_forgets_the_compensation_fails_at_construction() -> None:
    class NoCharge(Payments):
        def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded:
            return PaymentRefunded(payment_id=payment.payment_id)

    with pytest.raises(TypeError, match="charge"):
        NoCharge()  # type: ignore[abstract]


def test_complete_implementation_constructs() -> None:
    assert isinstance(FakePayments(), Payments)


# -- definition errors ---------------------------------------------------------------------


def test_missing_parameter_annotation() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order) -> PaymentCaptured: ...  # type: ignore[no-untyped-def]

    assert "'order' has no annotation" in str(caught.value)


def test_non_message_annotation() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order: dict[str, int]) -> PaymentCaptured: ...

    assert "not a message type" in str(caught.value)


def test_plain_class_annotation_is_not_a_message() -> None:
    with pytest.raises(DefinitionError, match="not a message type"):

        class Broken(Participant):
            @action
            def charge(self, order: str) -> PaymentCaptured: ...


def test_no_message_parameter() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            @action
            def charge(self, ctx: Context) -> PaymentCaptured: ...

    assert "at least one message parameter" in str(caught.value)


def test_no_parameter_at_all() -> None:
    with pytest.raises(DefinitionError, match="at least one message parameter"):

        class Broken(Participant):
            @action
            def charge(self) -> PaymentCaptured: ...


def test_two_contexts() -> None:
    with pytest.raises(DefinitionError, match="only one parameter may be the Context"):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced, a: Context, b: Context) -> None: ...


def test_same_message_type_twice() -> None:
    with pytest.raises(DefinitionError, match="two parameters take OrderPlaced"):

        class Broken(Participant):
            @action
            def charge(self, first: OrderPlaced, second: OrderPlaced) -> None: ...


def test_missing_return_annotation() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced): ...  # type: ignore[no-untyped-def]

    assert "no return annotation" in str(caught.value)


def test_union_return_is_a_business_outcome() -> None:
    class Charging(Participant):
        @action
        def charge(self, order: OrderPlaced) -> PaymentCaptured | PaymentRefunded: ...

    signature = Charging.charge.signature
    assert signature.returns_one_of
    assert signature.outputs == (PaymentCaptured, PaymentRefunded)
    assert signature.output == PaymentCaptured | PaymentRefunded


def test_union_of_related_messages_is_refused() -> None:
    class SpecialCapture(PaymentCaptured):
        pass

    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured | SpecialCapture: ...

    assert "cannot be told apart" in str(caught.value)


def test_union_with_a_non_message_is_refused() -> None:
    with pytest.raises(DefinitionError, match="each member of a union output"):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured | int: ...


def test_optional_return_is_a_union() -> None:
    with pytest.raises(DefinitionError, match="union"):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured | None: ...


def test_non_message_return() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> int: ...


@pytest.mark.parametrize(
    "returns",
    [
        tuple[PaymentCaptured, int],
        tuple[str, ...],  # (tuple[PaymentCaptured, ...] is a fan-out: test_fanout.py)
        tuple[PaymentCaptured, PaymentCaptured, ...],
        tuple[()],
        tuple[str],
    ],
)
def test_tuple_with_non_messages(returns: Any) -> None:
    def charge(self: Any, order: OrderPlaced) -> Any: ...

    charge.__annotations__["return"] = returns
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            locals()["charge"] = action(charge)

    assert "tuple output must list message types" in str(caught.value)


def test_tuple_repeating_a_message_type() -> None:
    with pytest.raises(DefinitionError, match="same message type twice"):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> tuple[PaymentCaptured, PaymentCaptured]: ...


def test_star_args() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            @action
            def charge(self, *orders: OrderPlaced) -> PaymentCaptured: ...

    assert "*args" in str(caught.value)


def test_keyword_only_parameter() -> None:
    with pytest.raises(DefinitionError, match="plain positional parameter"):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced, *, ctx: Context) -> PaymentCaptured: ...


def test_kwargs() -> None:
    with pytest.raises(DefinitionError, match="plain positional parameter"):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced, **extra: OrderPlaced) -> None: ...


def test_staticmethod_is_refused() -> None:
    with pytest.raises(DefinitionError, match="decorates a method"):

        class Broken(Participant):
            @action  # type: ignore[arg-type]
            @staticmethod
            def charge(order: OrderPlaced) -> PaymentCaptured: ...


def test_classmethod_is_refused() -> None:
    with pytest.raises(DefinitionError, match="decorates a method"):

        class Broken(Participant):
            @action  # type: ignore[arg-type]
            @classmethod
            def charge(cls, order: OrderPlaced) -> PaymentCaptured: ...


def test_function_without_self_is_refused() -> None:
    def charge(order: OrderPlaced) -> PaymentCaptured: ...

    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            locals()["charge"] = action(charge)  # type: ignore[arg-type]

    assert "first parameter is self" in str(caught.value)


def test_invalid_timeout_outside_a_class_names_the_method() -> None:
    def charge(self: Any, order: OrderPlaced) -> PaymentCaptured: ...

    with pytest.raises(DefinitionError, match=r"^charge: timeout must be a positive"):
        action(timeout=-1)(charge)


def test_non_callable_is_refused() -> None:
    with pytest.raises(DefinitionError, match="decorates a method"):
        action(42)  # type: ignore[call-overload]


def test_retry_must_be_a_retry() -> None:
    with pytest.raises(DefinitionError, match=r"retry= takes a Retry"):

        class Broken(Participant):
            @action(retry=3)  # type: ignore[arg-type]
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...


def test_compensation_taking_neither_input_nor_output() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "refund")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

            @charge.compensation
            def refund(self, other: Unrelated) -> None: ...

    message = str(caught.value)
    assert "Broken.charge" in message
    assert "neither its output nor its input" in message
    assert "PaymentCaptured" in message
    assert "OrderPlaced" in message


def test_compensation_with_two_message_parameters() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "refund")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

            @charge.compensation
            def refund(self, payment: PaymentCaptured, order: OrderPlaced) -> None: ...

    assert "exactly one message" in str(caught.value)


def test_compensation_with_missing_annotation() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "refund")):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

            @charge.compensation
            def refund(self, payment) -> None: ...  # type: ignore[no-untyped-def]


def test_second_compensation_on_one_action() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "charge")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

            @charge.compensation
            def refund(self, payment: PaymentCaptured) -> None: ...

            @charge.compensation
            def refund_again(self, payment: PaymentCaptured) -> None: ...

    assert "already has a compensation (refund)" in str(caught.value)


def test_compensation_kind_must_match_its_action() -> None:
    with pytest.raises(DefinitionError, match=_named("Broken", "refund")) as caught:

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

            @charge.compensation
            async def refund(self, payment: PaymentCaptured) -> None: ...

    assert "must be sync" in str(caught.value)


def test_async_action_with_sync_compensation() -> None:
    with pytest.raises(DefinitionError, match="must be async"):

        class Broken(Participant):
            @action
            async def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

            @charge.compensation
            def refund(self, payment: PaymentCaptured) -> None: ...


def test_sync_interface_async_implementation() -> None:
    with pytest.raises(DefinitionError, match=_named("AsyncPayments", "charge")) as caught:

        class AsyncPayments(Payments):
            async def charge(  # type: ignore[override]
                self, order: OrderPlaced, ctx: Context
            ) -> PaymentCaptured: ...

            def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...

    message = str(caught.value)
    assert "def (not async)" in message
    assert "Payments.charge" in message


class AsyncSellers(Participant):
    @action
    @abstractmethod
    async def reserve(self, order: OrderPlaced) -> StockReserved: ...

    @reserve.compensation
    @abstractmethod
    async def release(self, stock: StockReserved) -> None: ...


def test_async_interface_sync_implementation() -> None:
    with pytest.raises(DefinitionError, match=_named("SyncSellers", "reserve")) as caught:

        class SyncSellers(AsyncSellers):
            def reserve(self, order: OrderPlaced) -> StockReserved:  # type: ignore[override]
                return StockReserved(order_id=order.order_id)

            async def release(self, stock: StockReserved) -> None: ...

    assert "must be async def like AsyncSellers.reserve" in str(caught.value)


def test_async_interface_sync_compensation_implementation() -> None:
    with pytest.raises(DefinitionError, match=_named("SyncRelease", "release")):

        class SyncRelease(AsyncSellers):
            async def reserve(self, order: OrderPlaced) -> StockReserved:
                return StockReserved(order_id=order.order_id)

            def release(self, stock: StockReserved) -> None:  # type: ignore[override]
                return None


def test_async_implementation_of_async_interface_is_fine() -> None:
    class GoodSellers(AsyncSellers):
        async def reserve(self, order: OrderPlaced) -> StockReserved:
            return StockReserved(order_id=order.order_id)

        async def release(self, stock: StockReserved) -> None:
            return None

    assert isinstance(GoodSellers(), AsyncSellers)


@pytest.mark.parametrize("value", [42, "charge", None, property(lambda self: None)])
def test_overriding_an_action_with_a_non_callable(value: object) -> None:
    with pytest.raises(DefinitionError, match=_named("NotAMethod", "charge")) as caught:

        class NotAMethod(Payments):
            locals()["charge"] = value

            def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...

    assert "overrides Payments.charge" in str(caught.value)


def test_overriding_an_action_with_a_staticmethod() -> None:
    with pytest.raises(DefinitionError, match=r"overrides Payments\.charge with staticmethod"):

        class StaticCharge(Payments):
            @staticmethod
            def charge(order: OrderPlaced, ctx: Context) -> PaymentCaptured:  # type: ignore[override]
                return PaymentCaptured(order_id=order.order_id, payment_id="p")

            def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded: ...


def test_redeclaring_an_action_in_a_subclass_replaces_it() -> None:
    class Extended(Payments):
        @action(retry=Retry(attempts=7))
        def charge(self, order: OrderPlaced, ctx: Context) -> PaymentCaptured:
            return PaymentCaptured(order_id=order.order_id, payment_id="p")

        def refund(self, payment: PaymentCaptured, ctx: Context) -> PaymentRefunded:
            return PaymentRefunded(payment_id=payment.payment_id)

    assert Extended.__coordination_declared__["charge"] is Extended.charge
    assert Extended.charge.retry.attempts == 7
    assert Extended.charge.owner is Extended


# -- timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, True, False, "1", float("nan")])
def test_invalid_timeout(timeout: Any) -> None:
    with pytest.raises(DefinitionError, match=r"^Broken\.charge: timeout must be a positive"):

        class Broken(Participant):
            @action(timeout=timeout)
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...


@pytest.mark.parametrize("timeout", [0, -2.0, True])
def test_invalid_compensation_timeout(timeout: Any) -> None:
    with pytest.raises(DefinitionError, match=r"^Broken\.refund: timeout must be a positive"):

        class Broken(Participant):
            @action
            def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

            @charge.compensation(timeout=timeout)
            def refund(self, payment: PaymentCaptured) -> None: ...


@pytest.mark.parametrize("timeout", [1, 0.001, 3600.5])
def test_valid_timeouts(timeout: float) -> None:
    class Fine(Participant):
        @action(timeout=timeout)
        def charge(self, order: OrderPlaced) -> PaymentCaptured: ...

    assert Fine.charge.timeout == timeout


# -- declarations outside a Participant ----------------------------------------------------


def test_action_outside_a_participant_is_checked_on_first_use() -> None:
    class NotAParticipant:
        @action
        def charge(self, order) -> PaymentCaptured: ...  # type: ignore[no-untyped-def]

    assert NotAParticipant.charge.qualname == "NotAParticipant.charge"
    with pytest.raises(DefinitionError, match=_named("NotAParticipant", "charge")):
        NotAParticipant.charge.signature  # noqa: B018
