from django.core.cache import cache
from django_tenants.utils import schema_context


def test_cache_entries_are_kept_apart_by_tenant(alpha, beta):
    with schema_context(alpha.schema_name):
        cache.set("greeting", "hello from alpha")
    with schema_context(beta.schema_name):
        assert cache.get("greeting") is None
        cache.set("greeting", "hello from beta")
    with schema_context(alpha.schema_name):
        assert cache.get("greeting") == "hello from alpha"
        assert cache.make_key("greeting").startswith(f"{alpha.schema_name}:")
    cache.delete_many(["greeting"])
