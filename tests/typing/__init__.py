"""Files checked with mypy by tests/test_typing.py (not collected as tests themselves)."""
