"""The Celery app. Tasks run in the schema of the tenant that queued them (tenant-schemas-celery
puts the schema in the message headers); `TenantTask` refuses to run without one."""

import os

from django.db import connection
from tenant_schemas_celery.app import CeleryApp
from tenant_schemas_celery.task import TenantTask as BaseTenantTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")


class NoTenantError(RuntimeError):
    """A tenant task ran without a tenant: it would otherwise read or write the public schema."""


class TenantTask(BaseTenantTask):
    """Base task for all work: asserts a tenant's schema on entry. The few platform tasks that
    work on the public schema say so with `@shared_task(needs_tenant=False)`."""

    abstract = True
    needs_tenant = True

    def __call__(self, *args, **kwargs):
        if self.needs_tenant and connection.schema_name == "public":
            raise NoTenantError(f"{self.name} was queued without a tenant.")
        return super().__call__(*args, **kwargs)


app = CeleryApp("crm", task_cls=TenantTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
