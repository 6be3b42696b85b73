from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from orders import outbox
from orders.forms import OrderForm
from orders.models import RateCounter, StopLink, demand
from R4C.http import allow_methods, client_address, form_problem, in_english, prefers_html, problem
from robots.models import Version

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MINUTE, TEN_MINUTES = timedelta(minutes=1), timedelta(minutes=10)

# What the order page says beside a field, by the field and the kind of error: the API's
# English messages are for programs.
PAGE_ERRORS = {
    ("email", "required"): "Укажите адрес электронной почты.",
    ("email", None): "На этот адрес нельзя отправить письмо. Проверьте его: ivan@example.com.",
    ("robot-serial", "required"): "Выберите робота.",
    ("robot-serial", None): "Такого робота нет в каталоге.",
}


@allow_methods("GET", "HEAD")
def index(request: HttpRequest) -> HttpResponse:
    """The catalog as a customer sees it, and the form to order a robot."""
    serial = request.GET.get("serial", "")
    return _order_page(request, OrderForm(initial={"robot-serial": serial}))


@csrf_exempt  # API clients send no cookies; pages are protected below (_place_from_page)
def create_order(request: HttpRequest) -> HttpResponse:
    if request.method in ("GET", "HEAD") and prefers_html(request):
        return HttpResponseRedirect("/#order")  # someone opened the form's address: the form
    return _place(request)


@allow_methods("POST")
def _place(request: HttpRequest) -> HttpResponse:
    if prefers_html(request):
        return _place_from_page(request)
    return _place_from_api(request)


@in_english
def _place_from_api(request: HttpRequest) -> JsonResponse:
    if request.content_type not in FORM_TYPES:
        return problem(415, "Send the order as form data (multipart/form-data or urlencoded).")
    if wait := _client_limited(request):
        detail = (
            f"At most {settings.ORDER_LIMIT_PER_CLIENT} orders a minute from one address; wait."
        )
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
    if wait := _address_limited(form):
        limit = settings.ORDER_LIMIT_PER_EMAIL
        detail = f"At most {limit} orders in 10 minutes for one e-mail address."
        return problem(429, detail, retry_after=wait)

    placing = outbox.place(form.cleaned_data["email"], form.cleaned_data["robot-serial"])
    # Nothing stored about earlier placings but the time of a recent mail that answers this
    # one already: the address as this request gave it, and this placing's notice.
    last_sent = placing.last_sent and placing.last_sent.isoformat().replace("+00:00", "Z")
    return JsonResponse(
        {
            "id": placing.order.id,
            "email": form.cleaned_data["email"],
            "robot_serial": placing.order.robot_serial,
            "is_notified": False,
            "in_stock": placing.in_stock,
            "last_notified_at": last_sent,
        },
        status=201 if placing.created else 200,
    )


@csrf_protect  # a browser carries cookies: a page elsewhere must not post in its name
def _place_from_page(request: HttpRequest) -> HttpResponse:
    """A browser's form post: the confirmation page, or the form again with its errors."""
    # A body that cannot be read never gets here: the CSRF check reads it first, and
    # handler400 answers with a page (R4C.http.bad_request).
    if wait := _client_limited(request):
        return _too_many(request, wait)
    form = OrderForm(request.POST)
    if not form.is_valid():
        errors = {
            field: PAGE_ERRORS.get((field, wrong.data[0].code), PAGE_ERRORS[(field, None)])
            for field, wrong in form.errors.items()
            if (field, None) in PAGE_ERRORS
        }
        return _order_page(request, form, errors, status=400)
    if wait := _address_limited(form):
        return _too_many(request, wait)
    email, version = form.cleaned_data["email"], form.cleaned_data["robot-serial"]
    placing = outbox.place(email, version)
    context = {
        "email": email,
        "serial": placing.order.robot_serial,
        "in_stock": placing.in_stock,
        "last_sent": placing.last_sent,
    }
    return render(request, "orders/placed.html", context, status=201 if placing.created else 200)


def _order_page(request, form: OrderForm, errors=None, status: int = 200) -> HttpResponse:
    context = {
        "catalog": Version.catalog(),
        "form": form,
        "chosen": str(form["robot-serial"].value() or "").upper(),
        # Templates cannot read a key with a hyphen.
        "errors": {field.replace("-", "_"): error for field, error in (errors or {}).items()},
    }
    return render(request, "orders/index.html", context, status=status)


def _too_many(request: HttpRequest, wait: int) -> HttpResponse:
    response = render(request, "orders/too_many.html", {"minutes": -(-wait // 60)}, status=429)
    response["Retry-After"] = str(wait)
    return response


def _client_limited(request: HttpRequest) -> int:
    """Seconds until this client may order again (0: now); counts this request."""
    limit = settings.ORDER_LIMIT_PER_CLIENT
    return limit and RateCounter.hit(f"client:{client_address(request)}", limit, MINUTE)


def _address_limited(form: OrderForm) -> int:
    """Seconds until the form's address may be ordered for again (0: now); counts it."""
    limit = settings.ORDER_LIMIT_PER_EMAIL
    email = form.cleaned_data["email"]
    return limit and RateCounter.hit(f"email:{email.lower()}", limit, TEN_MINUTES)


# One click, as RFC 8058 has mail providers send it: a POST with no cookie and no CSRF token.
# The secret in the URL is the credential, and it exists only in the customer's mail.
@csrf_exempt
@allow_methods("GET", "HEAD", "POST")
def stop_mail(request: HttpRequest, secret: str) -> HttpResponse:
    """GET asks to confirm and changes nothing (mail scanners follow links); POST stops."""
    link = StopLink.find(secret)
    if link is None:
        return render(request, "orders/stop_unknown.html", status=404)
    context = {"email": link.customer.email}
    if request.method != "POST":
        return render(request, "orders/stop_confirm.html", context)
    outbox.stop(link)
    return render(request, "orders/stop_done.html", context)


@staff_member_required
@allow_methods("GET", "HEAD")
def demand_page(request: HttpRequest) -> HttpResponse:
    """For managers: what customers wait for, most awaited first."""
    context = {
        **admin.site.each_context(request),
        "title": "Спрос: чего ждут покупатели",
        "rows": demand(),
    }
    return render(request, "admin/orders/demand.html", context)
