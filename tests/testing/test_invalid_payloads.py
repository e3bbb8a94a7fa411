"""`invalid_payloads(Type)`: payloads a message must refuse, and refuses without harm."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given, settings
from pydantic import ValidationError

from coordination import from_json
from coordination.errors import MessageError
from coordination.testing import invalid_payloads
from examples.ecommerce import OrderPlaced
from tests.testing.test_fakes import Coded


@settings(max_examples=200)
@given(payload=invalid_payloads(OrderPlaced))
def test_every_invalid_payload_is_refused_by_validation(payload: Any) -> None:
    with pytest.raises(ValidationError):
        OrderPlaced.model_validate(payload)


@settings(max_examples=200)
@given(payload=invalid_payloads(Coded))
def test_constraint_violations_are_refused_too(payload: Any) -> None:
    with pytest.raises(ValidationError):
        Coded.model_validate(payload)


@settings(max_examples=200)
@given(text=invalid_payloads(OrderPlaced, as_json=True))
def test_every_invalid_document_is_a_message_error_and_imports_nothing(text: str) -> None:
    before = set(sys.modules)
    with pytest.raises((MessageError, ValidationError)):
        from_json(text, [OrderPlaced])
    assert set(sys.modules) == before
