from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from orders.forms import OrderForm
from orders.models import Order
from R4C.http import allow_methods, form_problem, problem

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@csrf_exempt  # no cookies or other ambient credentials are involved
@allow_methods("POST")
def create_order(request: HttpRequest) -> JsonResponse:
    if request.content_type not in FORM_TYPES:
        return problem(415, "Send the order as form data (multipart/form-data or urlencoded).")
    try:
        form = OrderForm(request.POST)
    except RequestDataTooBig:
        return problem(413, "The body is too large for an order.")
    except (MultiPartParserError, SuspiciousOperation):
        return problem(400, "The form data is malformed.")
    if not form.is_valid():
        return form_problem(form, "The order is not valid.")

    order, created, in_stock = Order.place(
        form.cleaned_data["email"], form.cleaned_data["robot-serial"]
    )
    # Nothing stored about earlier placings: the address as this request gave it, and this
    # placing's notice, which is not sent yet.
    return JsonResponse(
        {
            "id": order.id,
            "email": form.cleaned_data["email"],
            "robot_serial": order.robot_serial,
            "is_notified": False,
            "in_stock": in_stock,
        },
        status=201 if created else 200,
    )
