"""No order waits for nothing: the catalog entries that orders go by stay as they are."""

import re
from unittest import skipUnless

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.test import TestCase

from orders.mail import outbox
from orders.models import Order
from R4C.tests.world import catalog, place, version
from robots.models import Version


class CatalogProtectionTests(TestCase):
    def setUp(self):
        catalog()
        self.client.force_login(User.objects.create_superuser("boss", "boss@r4c.test", "pw"))

    def model_form(self, model, versions):
        data = {
            "name": model.name,
            "versions-TOTAL_FORMS": str(len(versions)),
            "versions-INITIAL_FORMS": str(len(versions)),
            "versions-MIN_NUM_FORMS": "0",
            "versions-MAX_NUM_FORMS": "1000",
        }
        for i, (v, name) in enumerate(versions):
            data |= {f"versions-{i}-id": str(v.pk), f"versions-{i}-name": name}
        return data

    def test_a_version_orders_wait_for_cannot_be_renamed(self):
        place("R2-D2", "ann@example.com", "bob@example.com")
        d2, a1 = version("R2-D2"), version("R2-A1")

        response = self.client.post(
            f"/admin/robots/model/{d2.model_id}/change/",
            self.model_form(d2.model, [(d2, "D3"), (a1, "A1")]),
        )
        self.assertContains(response, "R2-D2 нельзя переименовать: это имя носят заказы: 2.")
        d2.name = "D3"
        with self.assertRaises(IntegrityError), transaction.atomic():
            d2.save()  # a shell cannot either: the database refuses

        self.assertEqual(version("R2-D2").orders.count(), 2)

    def test_a_version_orders_wait_for_cannot_be_deleted(self):
        place("R2-D2", "ann@example.com")
        d2, a1 = version("R2-D2"), version("R2-A1")
        form = self.model_form(d2.model, [(d2, "D2"), (a1, "A1")])

        response = self.client.post(
            f"/admin/robots/model/{d2.model_id}/change/", form | {"versions-0-DELETE": "on"}
        )
        self.assertContains(response, "требовать удаления следующих связанных объектов")
        with self.assertRaises(ProtectedError):
            d2.delete()

        self.assertEqual(Order.objects.get().version, version("R2-D2"))


class InstalledTriggerTests(TestCase):
    @skipUnless(connection.vendor == "postgresql", "SQLite has no functions to read back")
    def test_the_installed_triggers_use_the_code_s_lock_key_and_channel(self):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT string_agg(prosrc, ' ') FROM pg_proc "
                "WHERE pronamespace = 'public'::regnamespace"
            )
            source = cursor.fetchone()[0]
        channels = re.findall(r"pg_notify\('(\w+)'", source)
        keys = re.findall(r"pg_advisory_xact_lock(?:_shared)?\((\d+),", source)
        self.assertEqual(set(channels), {outbox.CHANNEL})
        self.assertEqual(set(keys), {str(Version.LOCK_KEY)})
