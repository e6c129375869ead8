"""The entry layer's runner: runs a built `System` in a process (the composition is bootstrap's).

- `server`: what `waypost serve` runs, as `waypost.roles` decides: the HTTP server, the delivery
  worker and recovery runner, retention, the operator relay; SIGTERM drains them.
- `supervisor`: embedded mode's delivery process, parent side (start, restart, stop).
- `delivery_process`: its child side, `python -m waypost.runner.delivery_process`.

Nothing below this package knows about processes: the delivery worker only delivers.
"""
