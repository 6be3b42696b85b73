from django.urls import path

from robots import views

# Each API path also without its final slash: a redirect would turn a client's POST into a GET.
urlpatterns = [
    path("add_robot/", views.add_robot, name="add_robot"),
    path("add_robot", views.add_robot),
    path("download/", views.download_production_list, name="download_production_list"),
    path("download", views.download_production_list),
]
