"""The partner REST API's shared parts: keyset cursors, errors as JSON, idempotent POSTs,
optimistic concurrency, and the base viewset the apps' `api.py` modules build on."""
