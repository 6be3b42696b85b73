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

    if settings.SECURE_SSL_REDIRECT or settings.API_KEYS_REQUIRED:
        raise pytest.UsageError(
            "Run the suite with HTTPS=false and API_KEYS_REQUIRED=false (make test does): the "
            "test client speaks plain HTTP, which production settings redirect, and the API's "
            "tests send keys only where they test them."
        )
