"""WSGI entry point: `gunicorn R4C.wsgi` or any WSGI server."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "R4C.settings")

application = get_wsgi_application()
