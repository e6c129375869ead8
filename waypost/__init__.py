"""An event delivery server that speaks Hookdeck Outpost's API.

`contract.md §N` in a docstring or comment is section N of docs/contract.md, the server's own
statement of what it promises (tests/unit/test_contract_refs.py keeps every citation resolving).
"""

# The one place the version is written: pyproject.toml reads it (`dynamic = ["version"]`), and
# `waypost --version` and /healthz (its `version` field) show it.
__version__ = "0.1.0"
