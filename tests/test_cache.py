import uuid

from django.core.cache import cache
from django_tenants.utils import schema_context


def test_cache_entries_are_kept_apart_by_tenant(alpha, beta):
    key = f"greeting-{uuid.uuid4().hex}"
    with schema_context(alpha.schema_name):
        cache.set(key, "hello from alpha", 60)
    with schema_context(beta.schema_name):
        assert cache.get(key) is None
        cache.set(key, "hello from beta", 60)
    with schema_context(alpha.schema_name):
        assert cache.get(key) == "hello from alpha"
        assert cache.make_key(key).startswith(f"{alpha.schema_name}:")
