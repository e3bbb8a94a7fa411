"""A second flow for the equivalence tests: booking a trip.

A traveller asks for a trip; the wallet takes a deposit; then the airline books seats and
the hotel holds a room side by side (both need the deposit); the agency issues the
itinerary once it has both. Four participants with real in-memory state and `snapshot()`,
every effect keyed by `ctx.idempotency_key`, every action with a `Retry` of its own:

- `Wallet.take_deposit`, undone by its output (`DepositTaken` -> `refund_deposit`);
- `Airline.book_seats`, undone by its output (`SeatsBooked` -> `cancel_seats`);
- `Hotels.hold_room`, undone by its **input** (`TripRequested` -> `release_room`): it runs
  for every hold that started, also a failed one, and is a no-op when nothing was held;
- `Agency.issue_itinerary`, the join, terminal and not undone.

Module-level (not inside a test) so every message and participant has an importable name.
The same participant classes run under `BookTrip` and under a `Choreography`.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from coordination import Context, Event, NonRetryable, Participant, Retry, action
from coordination.orchestration import Orchestrator, parallel, step

__all__ = [
    "Agency",
    "Airline",
    "BookTrip",
    "DepositRefunded",
    "DepositTaken",
    "Hotels",
    "InMemoryAgency",
    "InMemoryAirline",
    "InMemoryHotels",
    "InMemoryWallet",
    "ItineraryIssued",
    "RoomHeld",
    "SeatsBooked",
    "SeatsCancelled",
    "TripRequested",
    "Wallet",
    "travel_services",
]

# -- messages --------------------------------------------------------------------------------


class TripRequested(Event):
    """The traveller asked for a trip: the flow starts here."""

    trip_id: str = Field(min_length=1)
    traveller_id: str = Field(min_length=1)
    flight: str = Field(min_length=1)
    seats: int = Field(gt=0)
    hotel: str = Field(min_length=1)
    nights: int = Field(gt=0)
    deposit_cents: int = Field(gt=0)


class DepositTaken(Event):
    trip_id: str
    deposit_id: str
    traveller_id: str
    amount_cents: int


class DepositRefunded(Event):
    trip_id: str
    deposit_id: str
    amount_cents: int


class SeatsBooked(Event):
    trip_id: str
    booking_ref: str
    flight: str
    seats: int


class SeatsCancelled(Event):
    trip_id: str
    booking_ref: str


class RoomHeld(Event):
    trip_id: str
    hotel: str
    room: str
    nights: int


class ItineraryIssued(Event):
    """The traveller got one document naming the booking and the room."""

    trip_id: str
    booking_ref: str
    room: str


# -- interfaces ------------------------------------------------------------------------------


class InsufficientFunds(NonRetryable):
    """The traveller cannot pay the deposit."""


class FlightFull(NonRetryable):
    """Not enough seats left on the flight."""


class NoRoomFree(NonRetryable):
    """The hotel has no room left."""


class Wallet(Participant):
    """Holds travellers' money; takes a deposit before anything is booked."""

    @action(retry=Retry(attempts=3, backoff=0.05))
    @abstractmethod
    def take_deposit(self, trip: TripRequested, ctx: Context) -> DepositTaken: ...

    @take_deposit.compensation
    @abstractmethod
    def refund_deposit(self, deposit: DepositTaken, ctx: Context) -> DepositRefunded: ...


class Airline(Participant):
    """Books seats on a flight once the deposit is in."""

    @action(retry=Retry(attempts=2, backoff=0.1))
    @abstractmethod
    def book_seats(
        self, trip: TripRequested, deposit: DepositTaken, ctx: Context
    ) -> SeatsBooked: ...

    @book_seats.compensation
    @abstractmethod
    def cancel_seats(self, booking: SeatsBooked, ctx: Context) -> SeatsCancelled: ...


class Hotels(Participant):
    """Holds a room once the deposit is in; releases it by the trip (an input-typed undo)."""

    @action(retry=Retry(attempts=3, backoff=0.02))
    @abstractmethod
    def hold_room(self, trip: TripRequested, deposit: DepositTaken, ctx: Context) -> RoomHeld: ...

    @hold_room.compensation
    @abstractmethod
    def release_room(self, trip: TripRequested, ctx: Context) -> None: ...


class Agency(Participant):
    """Issues the itinerary: a join of the booking and the room."""

    @action(retry=Retry(attempts=2, backoff=0.05))
    @abstractmethod
    def issue_itinerary(
        self, booking: SeatsBooked, room: RoomHeld, ctx: Context
    ) -> ItineraryIssued: ...


class BookTrip(Orchestrator[TripRequested, ItineraryIssued], name="tests.book-trip"):
    """Deposit, then seats and room side by side, then the itinerary (needs both)."""

    steps = (
        step(Wallet.take_deposit),
        parallel(step(Airline.book_seats), step(Hotels.hold_room)),
        step(Agency.issue_itinerary),
    )


# -- in-memory implementations ---------------------------------------------------------------


class InMemoryWallet(Wallet):
    """Balances in cents; deposits keyed by idempotency key, refunds by deposit id."""

    def __init__(self, balances: Mapping[str, int]) -> None:
        self.balances = dict(balances)
        self.deposits: dict[str, DepositTaken] = {}
        self.refunded: set[str] = set()

    def take_deposit(self, trip: TripRequested, ctx: Context) -> DepositTaken:
        done = self.deposits.get(ctx.idempotency_key)
        if done is not None:
            return done
        balance = self.balances.get(trip.traveller_id, 0)
        if balance < trip.deposit_cents:
            raise InsufficientFunds(
                f"{trip.traveller_id} has {balance}, needs {trip.deposit_cents}"
            )
        self.balances[trip.traveller_id] = balance - trip.deposit_cents
        deposit = DepositTaken(
            trip_id=trip.trip_id,
            deposit_id=f"dep-{len(self.deposits) + 1}",
            traveller_id=trip.traveller_id,
            amount_cents=trip.deposit_cents,
        )
        self.deposits[ctx.idempotency_key] = deposit
        return deposit

    def refund_deposit(self, deposit: DepositTaken, ctx: Context) -> DepositRefunded:
        if deposit.deposit_id not in self.refunded:
            self.refunded.add(deposit.deposit_id)
            self.balances[deposit.traveller_id] = (
                self.balances.get(deposit.traveller_id, 0) + deposit.amount_cents
            )
        return DepositRefunded(
            trip_id=deposit.trip_id,
            deposit_id=deposit.deposit_id,
            amount_cents=deposit.amount_cents,
        )

    def snapshot(self) -> dict[str, Any]:
        held = sorted(
            (d.trip_id, d.amount_cents)
            for d in self.deposits.values()
            if d.deposit_id not in self.refunded
        )
        return {"balances": dict(sorted(self.balances.items())), "deposits": held}


class InMemoryAirline(Airline):
    """Seats left per flight; bookings keyed by idempotency key, cancellations by reference."""

    def __init__(self, seats: Mapping[str, int]) -> None:
        self.seats = dict(seats)
        self.bookings: dict[str, SeatsBooked] = {}
        self.cancelled: set[str] = set()

    def book_seats(self, trip: TripRequested, deposit: DepositTaken, ctx: Context) -> SeatsBooked:
        done = self.bookings.get(ctx.idempotency_key)
        if done is not None:
            return done
        left = self.seats.get(trip.flight, 0)
        if left < trip.seats:
            raise FlightFull(f"{trip.flight}: {left} seats left, {trip.seats} wanted")
        self.seats[trip.flight] = left - trip.seats
        booking = SeatsBooked(
            trip_id=trip.trip_id,
            booking_ref=f"BK{len(self.bookings) + 1:04d}",
            flight=trip.flight,
            seats=trip.seats,
        )
        self.bookings[ctx.idempotency_key] = booking
        return booking

    def cancel_seats(self, booking: SeatsBooked, ctx: Context) -> SeatsCancelled:
        if booking.booking_ref not in self.cancelled:
            self.cancelled.add(booking.booking_ref)
            self.seats[booking.flight] = self.seats.get(booking.flight, 0) + booking.seats
        return SeatsCancelled(trip_id=booking.trip_id, booking_ref=booking.booking_ref)

    def snapshot(self) -> dict[str, Any]:
        standing = sorted(
            (b.trip_id, b.flight, b.seats)
            for b in self.bookings.values()
            if b.booking_ref not in self.cancelled
        )
        return {"seats": dict(sorted(self.seats.items())), "booked": standing}


class InMemoryHotels(Hotels):
    """Free rooms per hotel; holds keyed by the step's idempotency key.

    The undo gets the step's key plus `:undo` (a late result's undo its own key), so it
    finds the hold its step made (if any attempt made one) and frees that room; without a
    hold it does nothing.
    """

    def __init__(self, rooms: Mapping[str, Iterable[str]]) -> None:
        self.free = {hotel: deque(numbers) for hotel, numbers in rooms.items()}
        self.holds: dict[str, RoomHeld] = {}

    def hold_room(self, trip: TripRequested, deposit: DepositTaken, ctx: Context) -> RoomHeld:
        done = self.holds.get(ctx.idempotency_key)
        if done is not None:
            return done
        free = self.free.get(trip.hotel)
        if not free:
            raise NoRoomFree(f"{trip.hotel} is full")
        held = RoomHeld(
            trip_id=trip.trip_id, hotel=trip.hotel, room=free.popleft(), nights=trip.nights
        )
        self.holds[ctx.idempotency_key] = held
        return held

    def release_room(self, trip: TripRequested, ctx: Context) -> None:
        # Found by the state it undoes: the hold of the step's own key, from the undo's key
        # (`...:undo`, or a late result's `...:late<n>:undo`).
        held = self.holds.pop(re.sub(r"(:late\d+)?:undo$", "", ctx.idempotency_key), None)
        if held is not None:
            self.free[held.hotel].append(held.room)

    def snapshot(self) -> dict[str, Any]:
        return {
            "free": {hotel: sorted(rooms) for hotel, rooms in sorted(self.free.items())},
            "held": sorted((h.trip_id, h.hotel, h.nights) for h in self.holds.values()),
        }


class InMemoryAgency(Agency):
    """Issued itineraries, one per trip however often the join is retried."""

    def __init__(self) -> None:
        self.issued: dict[str, ItineraryIssued] = {}

    def issue_itinerary(
        self, booking: SeatsBooked, room: RoomHeld, ctx: Context
    ) -> ItineraryIssued:
        done = self.issued.get(ctx.idempotency_key)
        if done is not None:
            return done
        if booking.trip_id != room.trip_id:
            raise NonRetryable(f"booking {booking.trip_id} and room {room.trip_id} differ")
        issued = ItineraryIssued(
            trip_id=booking.trip_id, booking_ref=booking.booking_ref, room=room.room
        )
        self.issued[ctx.idempotency_key] = issued
        return issued

    def snapshot(self) -> dict[str, Any]:
        return {"issued": sorted((i.trip_id, i.booking_ref, i.room) for i in self.issued.values())}


def travel_services() -> tuple[InMemoryWallet, InMemoryAirline, InMemoryHotels, InMemoryAgency]:
    """Fresh participants with enough money, seats and rooms for any trip the tests make."""
    return (
        InMemoryWallet({"t1": 100_000}),
        InMemoryAirline({"XY123": 6}),
        InMemoryHotels({"Grand": ["101", "102", "103"]}),
        InMemoryAgency(),
    )
