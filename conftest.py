import pytest


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # PBKDF2 costs the admin tests half a second each and proves nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
