"""Cache keys that carry the tenant's schema, so two tenants never read each other's entries."""

from django.db import connection


def make_key(key, key_prefix, version):
    return f"{connection.schema_name}:{key_prefix}:{version}:{key}"
