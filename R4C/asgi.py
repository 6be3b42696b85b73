"""ASGI entry point, for servers that speak ASGI."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "R4C.settings")

application = get_asgi_application()

# A server without a SECRET_KEY stops here, naming it, rather than at its first login.
settings.SECRET_KEY  # noqa: B018 - reading an empty one raises ImproperlyConfigured
