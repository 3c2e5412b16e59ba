import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

django_application = get_wsgi_application()

# The tracking snippet's ingest endpoint (thousands of small posts a second) is answered before
# Django's middleware and URL routing; everything else goes to Django (see tracking.ingest).
from tracking.ingest import with_ingest  # noqa: E402

application = with_ingest(django_application)
