"""WSGI entry point: `gunicorn R4C.wsgi` or any WSGI server."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "R4C.settings")

application = get_wsgi_application()

# A server without a SECRET_KEY stops here, naming it, rather than at its first login.
settings.SECRET_KEY  # noqa: B018 - reading an empty one raises ImproperlyConfigured
