"""The pure domain: models and rules with no I/O."""
