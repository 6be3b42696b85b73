"""What every benchmark does before it imports Django's models."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(sqlite_name: str) -> None:
    """Set Django up on DATABASE_URL, or on the SQLite file bench/<sqlite_name>."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'bench' / sqlite_name}")
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ["ALLOWED_HOSTS"] = "testserver"  # Django's test client
    os.environ["LOG_LEVEL"] = "WARNING"
    # Django's test client speaks plain HTTP, sends no key and is one client placing many
    # orders: these benchmarks measure other things (bench/serve.py measures with a key).
    os.environ |= {
        "HTTPS": "false",
        "API_KEYS_REQUIRED": "false",
        "ORDER_LIMIT_PER_CLIENT": "0",
        "ORDER_LIMIT_PER_EMAIL": "0",
        "SITE_URL": "https://r4c.example.com",  # the stop links in the notices
    }
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "R4C.settings")

    import django

    django.setup()
