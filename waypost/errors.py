"""The project's exception hierarchy.

OutpostError
├── ConfigError                 bad settings; the process refuses to start
├── InputError                  the caller sent something wrong (the API maps it to 4xx)
│   ├── ValidationError         422 "validation error" with a list of field messages
│   ├── NotFoundError           404
│   ├── ConflictError           400 (e.g. "destination already exists")
│   └── ForbiddenError          403
├── StoreError                  a storage backend failed; callers see no driver exception
│   └── StoreUnavailable        the backend cannot be reached right now (API answers 503)
└── DeliveryInfrastructureError no attempt was made (shutdown, publisher could not be built):
                                the task goes back to the queue, no retry budget is used
"""

from __future__ import annotations

from typing import Any


class OutpostError(Exception):
    """Root of everything this project raises on purpose."""


class ConfigError(OutpostError):
    pass


class InputError(OutpostError):
    status = 400

    def __init__(self, message: str, data: Any = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        if status is not None:
            self.status = status


class ValidationError(InputError):
    status = 422

    def __init__(self, messages: list[str] | dict[str, str], message: str = "validation error"):
        super().__init__(message, messages)


class NotFoundError(InputError):
    status = 404


class ConflictError(InputError):
    status = 400


class ForbiddenError(InputError):
    status = 403


class StoreError(OutpostError):
    pass


class StoreUnavailable(StoreError):
    pass


class DeliveryInfrastructureError(OutpostError):
    pass
