from django.urls import path

from bench import views
from R4C.urls import urlpatterns as product

# References for `make bench`, never in the product's URLs.
urlpatterns = [
    path("bench/trivial/", views.trivial),
    path("bench/insert/", views.insert),
    *product,
]
