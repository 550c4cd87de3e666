"""Shared contracts of the inference platform.

Everything the api, worker and web services must agree on lives here exactly
once: settings helpers, the message contract, the database tables that the
api and worker read or write, API key hashing and telemetry set-up.
"""

__version__ = "0.1.0"
