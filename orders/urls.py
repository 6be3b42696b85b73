from django.urls import path

from orders import views

urlpatterns = [
    path("", views.index, name="index"),
    path("create_order/", views.create_order, name="create_order"),
    path("create_order", views.create_order),  # no redirect: see robots/urls.py
    path("order/<str:secret>/", views.order_page, name="order_page"),
    path("stop/<str:secret>/", views.stop_mail, name="stop_mail"),
]
