from django.contrib.admin.apps import AdminConfig


class R4CAdminConfig(AdminConfig):
    """Django's admin, on R4C's own site (R4C.admin.R4CAdminSite)."""

    default_site = "R4C.admin.R4CAdminSite"
