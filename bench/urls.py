from django.urls import path

from bench import views
from R4C.urls import urlpatterns as product

# References for `make bench`, never in the product's URLs.
urlpatterns = [
    path("bench/trivial/", views.trivial),
    path("bench/insert/", views.insert),
    path("bench/insert_order/", views.insert_order),
    path("bench/add_robot_without_key/", views.add_robot_without_key),
    *product,
]
