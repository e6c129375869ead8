"""An event delivery server that speaks Hookdeck Outpost's API."""

__version__ = "0.1.0"
