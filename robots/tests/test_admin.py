import re
from datetime import UTC, datetime

from django.contrib.auth.models import User
from django.test import TestCase

from robots.models import Model, Robot, Version


class CatalogAdminTests(TestCase):
    def setUp(self):
        self.staff = User.objects.create_superuser("director", "director@r4c.test", "pw")
        self.client.force_login(self.staff)

    def model_form(self, name, versions, prefix_ids=()):
        data = {
            "name": name,
            "versions-TOTAL_FORMS": str(len(versions)),
            "versions-INITIAL_FORMS": str(len(prefix_ids)),
            "versions-MIN_NUM_FORMS": "0",
            "versions-MAX_NUM_FORMS": "1000",
        }
        for i, version in enumerate(versions):
            data[f"versions-{i}-name"] = version
            if i < len(prefix_ids):
                data[f"versions-{i}-id"] = str(prefix_ids[i])
        return data

    def test_a_staff_user_adds_a_model_with_its_versions(self):
        response = self.client.post(
            "/admin/robots/model/add/", self.model_form("x5", ["LT", "m1"])
        )

        self.assertEqual(response.status_code, 302)
        model = Model.objects.get()
        self.assertEqual(model.name, "X5")
        self.assertEqual(sorted(model.versions.values_list("name", flat=True)), ["LT", "M1"])

    def test_a_model_s_page_shows_no_count_in_the_empty_row_for_a_new_version(self):
        self.client.post("/admin/robots/model/add/", self.model_form("x5", ["LT"]))
        page = self.client.get(f"/admin/robots/model/{Model.objects.get().pk}/change/")
        counts = re.findall(
            r'<td class="field-robot_count">\s*<p>(.*?)</p>', page.content.decode()
        )
        self.assertEqual(counts[0], "0")  # LT: none produced yet
        self.assertNotIn("0", counts[1:])  # the row for a new version counts nothing

    def test_it_refuses_names_that_are_not_two_letters_or_digits(self):
        response = self.client.post("/admin/robots/model/add/", self.model_form("R2D", ["D-"]))

        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "exactly two characters")
        self.assertFalse(Model.objects.exists())
        self.assertFalse(Version.objects.exists())

    def test_it_refuses_a_model_name_that_exists_in_another_case(self):
        Model.objects.create(name="R2")
        response = self.client.post("/admin/robots/model/add/", self.model_form("r2", []))

        self.assertEqual(response.status_code, 200)
        self.assertEqual(Model.objects.count(), 1)

    def test_it_refuses_the_same_version_twice_in_one_model(self):
        response = self.client.post(
            "/admin/robots/model/add/", self.model_form("R2", ["D2", "d2"])
        )

        self.assertEqual(response.status_code, 200)
        self.assertFalse(Model.objects.exists())

    def test_it_keeps_a_produced_model_from_being_deleted_or_renamed(self):
        r2 = Model.objects.create(name="R2")
        d2 = Version.objects.create(model=r2, name="D2")
        Robot.objects.create(model=r2, version=d2, created=datetime(2023, 10, 3, tzinfo=UTC))

        response = self.client.post(f"/admin/robots/model/{r2.pk}/delete/", {"post": "yes"})
        self.assertContains(response, "удаления следующих защищённых объектов")
        response = self.client.post(
            f"/admin/robots/model/{r2.pk}/change/", self.model_form("R3", ["D2"], [d2.pk])
        )
        self.assertContains(response, "нельзя переименовать")

        self.assertEqual(Model.objects.get().name, "R2")
        self.assertEqual(Robot.objects.get().serial, "R2-D2")

    def test_it_lists_robots_with_search_and_filter(self):
        r2 = Model.objects.create(name="R2")
        d2 = Version.objects.create(model=r2, name="D2")
        xs = Version.objects.create(model=Model.objects.create(name="13"), name="XS")
        Robot.objects.create(model=r2, version=d2, created=datetime(2023, 10, 3, tzinfo=UTC))
        Robot.objects.create(model=xs.model, version=xs, created=datetime(2023, 10, 4, tzinfo=UTC))

        response = self.client.get("/admin/robots/robot/", {"q": "R2-D2"})
        self.assertContains(response, "R2-D2")
        self.assertNotContains(response, "13-XS")
        response = self.client.get("/admin/robots/robot/", {"model__id__exact": xs.model_id})
        self.assertContains(response, "13-XS")
        self.assertNotContains(response, "R2-D2")

    def test_the_delete_page_counts_the_robots_that_keep_a_model_instead_of_listing_them(self):
        r2 = Model.objects.create(name="R2")
        d2 = Version.objects.create(model=r2, name="D2")
        Robot.objects.bulk_create(
            Robot(model=r2, version=d2, serial="R2-D2", created=datetime(2023, 10, 3, tzinfo=UTC))
            for _ in range(1500)
        )

        response = self.client.get(f"/admin/robots/model/{r2.pk}/delete/")

        self.assertContains(response, "роботы: 1500")
        first = Robot.objects.order_by("pk").first()
        self.assertNotContains(response, f"/admin/robots/robot/{first.pk}/")  # no list
