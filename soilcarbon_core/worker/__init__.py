"""The worker process the QGIS plugin drives: one JSON request in, JSON lines out.

See ``docs/worker-protocol.md`` for the protocol; :mod:`.protocol` holds its messages and
:mod:`.tasks` the requests it serves.
"""
