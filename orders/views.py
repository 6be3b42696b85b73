from datetime import timedelta

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from orders.forms import OrderForm
from orders.models import Order, RateCounter
from R4C.http import allow_methods, client_address, form_problem, problem

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MINUTE, TEN_MINUTES = timedelta(minutes=1), timedelta(minutes=10)


@csrf_exempt  # no cookies or other ambient credentials are involved
@allow_methods("POST")
def create_order(request: HttpRequest) -> JsonResponse:
    if request.content_type not in FORM_TYPES:
        return problem(415, "Send the order as form data (multipart/form-data or urlencoded).")
    limit = settings.ORDER_LIMIT_PER_CLIENT
    if limit and (wait := RateCounter.hit(f"client:{client_address(request)}", limit, MINUTE)):
        detail = f"At most {limit} orders a minute from one address; wait."
        return problem(429, detail, retry_after=wait)
    try:
        form = OrderForm(request.POST)
    except RequestDataTooBig:
        return problem(413, "The body is too large for an order.")
    except BadRequest as error:  # e.g. urlencoded in a charset other than UTF-8
        return problem(400, f"The form data cannot be read: {error}")
    except (MultiPartParserError, SuspiciousOperation, LookupError, UnicodeError):
        # LookupError, UnicodeError: a multipart charset that is no codec, or that the
        # fields are not in.
        return problem(400, "The form data is malformed.")
    if not form.is_valid():
        return form_problem(form, "The order is not valid.")
    limit = settings.ORDER_LIMIT_PER_EMAIL
    email = form.cleaned_data["email"]
    if limit and (wait := RateCounter.hit(f"email:{email.lower()}", limit, TEN_MINUTES)):
        detail = f"At most {limit} orders in 10 minutes for one e-mail address."
        return problem(429, detail, retry_after=wait)

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
