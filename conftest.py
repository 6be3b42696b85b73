import pytest


@pytest.fixture(autouse=True)
def test_settings(settings):
    # PBKDF2 costs the admin tests half a second each and proves nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # In-process tests render the admin without collectstatic; the end-to-end test runs
    # the service as `make serve` does, hashed static files included.
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    }


def pytest_configure(config):
    from django.conf import settings

    production = {
        "HTTPS": settings.SECURE_SSL_REDIRECT,
        "API_KEYS_REQUIRED": settings.API_KEYS_REQUIRED,
        "ORDER_LIMIT_PER_CLIENT": settings.ORDER_LIMIT_PER_CLIENT,
        "ORDER_LIMIT_PER_EMAIL": settings.ORDER_LIMIT_PER_EMAIL,
    }
    if any(production.values()):
        raise pytest.UsageError(
            f"Run the suite with {', '.join(f'{k}=0' for k in production)} (make test does): "
            "the test client speaks plain HTTP, which production settings redirect, and the "
            "tests send keys and many orders only where they test keys and limits."
        )
