from django.contrib import admin
from django.urls import include, path

from orders.views import demand_page
from R4C import views
from robots.views import report_page

urlpatterns = [
    # Before the admin's own URLs, which would answer it with a 404.
    path("admin/report/", report_page, name="report"),
    path("admin/demand/", demand_page, name="demand"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("openapi.json", views.openapi, name="openapi"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("", include("robots.urls")),
    path("", include("orders.urls")),
]

handler400 = "R4C.http.bad_request"
handler404 = "R4C.http.not_found"
handler500 = "R4C.http.server_error"
