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
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "R4C.settings")

    import django

    django.setup()
