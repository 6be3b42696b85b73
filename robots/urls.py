from django.urls import path

from robots import views

urlpatterns = [
    path("add_robot/", views.add_robot, name="add_robot"),
    path("download/", views.download_production_list, name="download_production_list"),
]
