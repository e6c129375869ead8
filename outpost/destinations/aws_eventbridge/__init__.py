"""The `aws_eventbridge` destination type."""
