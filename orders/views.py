from contextlib import suppress
from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core import signing
from django.core.exceptions import BadRequest, SuspiciousOperation, ValidationError
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from customers.models import inbox
from orders.forms import OrderForm
from orders.mail import outbox
from orders.models import Order, Quota, RateCounter, State, StopLink, demand
from R4C.http import (
    allow_methods,
    client_address,
    form_problem,
    in_english,
    max_body,
    prefers_html,
    problem,
)
from robots.models import Version

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MINUTE, TEN_MINUTES = timedelta(minutes=1), timedelta(minutes=10)

# What the order page says beside a field, by the field and the kind of error: the API's
# English messages are for programs.
PAGE_ERRORS = {
    ("email", "required"): "Укажите адрес электронной почты.",
    ("email", None): "На этот адрес нельзя отправить письмо. Проверьте, что он написан "
    "полностью, например, ivan@example.com.",
    ("robot-serial", "required"): "Выберите робота.",
    ("robot-serial", None): "Такого робота нет в каталоге.",
}


@allow_methods("GET", "HEAD")
def index(request: HttpRequest) -> HttpResponse:
    """The catalog as a customer sees it, and the form to order a robot."""
    serial = request.GET.get("serial", "")
    return _order_page(request, OrderForm(initial={"robot-serial": serial}))


# An order is two short fields: a few hundred bytes, also as multipart.
MAX_ORDER_BODY = 8 * 1024


class FilePart(SuspiciousOperation):
    """An order's form data with a file in it: refused before any of it is stored."""


class NoFiles(FileUploadHandler):
    def new_file(self, *args, **kwargs):
        raise FilePart("An order has no files: send only the fields email and robot-serial.")


@max_body(MAX_ORDER_BODY)
@csrf_exempt  # API clients send no cookies; pages are protected below (_place_from_page)
def create_order(request: HttpRequest) -> HttpResponse:
    if request.method in ("GET", "HEAD") and prefers_html(request):
        return HttpResponseRedirect("/#order")  # someone opened the form's address: the form
    with suppress(AttributeError):  # a request tried again (R4C.http) was read already
        request.upload_handlers = [NoFiles(request)]
    # Every request counts against its client's limit, a valid order against its address's
    # too, in one statement; each answer tells the limit nearest to being reached.
    quotas = []
    response = _place(request, quotas)
    if not quotas:  # answered before an order was read whole (a wrong method, a bad form)
        _count(request, quotas)
    if quotas:
        response["RateLimit-Policy"] = ", ".join(quota.policy for quota in quotas)
        nearest = min(quotas, key=lambda quota: (quota.remaining, not quota.exceeded))
        response["RateLimit"] = nearest.state
    return response


@allow_methods("POST")
def _place(request: HttpRequest, quotas: list[Quota]) -> HttpResponse:
    if prefers_html(request):
        return _place_from_page(request, quotas)
    return _place_from_api(request, quotas)


@in_english
def _place_from_api(request: HttpRequest, quotas: list[Quota]) -> HttpResponse:
    if request.content_type not in FORM_TYPES:
        return problem(415, "Send the order as form data (multipart/form-data or urlencoded).")
    try:
        form = OrderForm(request.POST)
    except (BadRequest, FilePart) as error:  # e.g. urlencoded in another charset than UTF-8
        return problem(400, f"The form data cannot be read: {error}")
    except (MultiPartParserError, SuspiciousOperation, LookupError, UnicodeError):
        # LookupError, UnicodeError: a multipart charset that is no codec, or that the
        # fields are not in.
        return problem(400, "The form data is malformed.")
    if not form.is_valid():
        return form_problem(form, "The order is not valid.")
    if over := _count(request, quotas, form.cleaned_data["email"]):
        return _too_many(request, over)

    try:
        placing = outbox.place(form.cleaned_data["email"], form.cleaned_data["robot-serial"])
    except ValidationError as error:  # its version was renamed or deleted a moment ago
        form.add_error("robot-serial", error)
        return form_problem(form, "The order is not valid.")
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
def _place_from_page(request: HttpRequest, quotas: list[Quota]) -> HttpResponse:
    """A browser's form post: to the order's page, or the form again with its errors."""
    # A body that cannot be read never gets here: the CSRF check reads it first, and
    # handler400 answers with a page (R4C.http.bad_request).
    form = OrderForm(request.POST)
    if not form.is_valid():
        errors = {
            field: PAGE_ERRORS.get((field, wrong.data[0].code), PAGE_ERRORS[(field, None)])
            for field, wrong in form.errors.items()
            if (field, None) in PAGE_ERRORS
        }
        return _order_page(request, form, errors, status=400)
    email, version = form.cleaned_data["email"], form.cleaned_data["robot-serial"]
    if over := _count(request, quotas, email):
        return _too_many(request, over)
    try:
        placing = outbox.place(email, version)
    except ValidationError:  # its version was renamed or deleted a moment ago
        errors = {"robot-serial": PAGE_ERRORS[("robot-serial", None)]}
        return _order_page(request, form, errors, status=400)
    # POST/redirect/GET: the answer is the order's own page, so a reload posts nothing again.
    return HttpResponseRedirect(
        f"/order/{signing.dumps(placing.order.pk, salt=ORDER_PAGE)}/", status=303
    )


# The customer's page of an order, at the address the form's answer leads to: its secret
# names the order and is given only to the browser that placed it; it works for ORDER_PAGE_DAYS.
ORDER_PAGE, ORDER_PAGE_DAYS = "orders.order_page", 30


@allow_methods("GET", "HEAD")
def order_page(request: HttpRequest, secret: str) -> HttpResponse:
    """Where the customer's order stands: waiting, mailed, or why no mail will come."""
    try:
        pk = signing.loads(secret, salt=ORDER_PAGE, max_age=timedelta(days=ORDER_PAGE_DAYS))
    except signing.BadSignature:
        pk = None
    order = Order.objects.select_related("customer").filter(pk=pk).first() if pk else None
    if order is None:
        return render(request, "orders/order_unknown.html", status=404)
    last_sent = outbox.mailed_lately(order)
    case = "suppressed" if outbox.suppressed(order.customer_id) else order.state
    case = "mailed_lately" if last_sent and case == State.WAITING else case
    context = {"order": order, "case": case, "heading": HEADINGS[case], "last_sent": last_sent}
    return render(request, "orders/order.html", context)


# What the customer's order page says first, by what became of the order.
HEADINGS = {
    State.WAITING: "Мы напишем, когда робот появится",
    "mailed_lately": "Письмо об этом роботе уже отправлено",
    State.DUE: "Робот в наличии — письмо уже в пути",
    State.SENDING: "Робот в наличии — письмо уже в пути",
    State.SENT: "Робот в наличии — письмо отправлено",
    State.FAILED: "Письмо не удалось доставить",
    State.STOPPED: "Письма на этот адрес остановлены",
    "suppressed": "Письма на этот адрес не доходят",
}


def _order_page(request, form: OrderForm, errors=None, status: int = 200) -> HttpResponse:
    context = {
        "catalog": Version.catalog(),
        "form": form,
        "chosen": str(form["robot-serial"].value() or "").upper(),
        # Templates cannot read a key with a hyphen.
        "errors": {field.replace("-", "_"): error for field, error in (errors or {}).items()},
    }
    return render(request, "orders/index.html", context, status=status)


# The limits on placing orders: per client address a minute, per e-mail address in 10 minutes.
LIMITS = {
    "client": ("ORDER_LIMIT_PER_CLIENT", MINUTE, "orders a minute from one client address"),
    "email": ("ORDER_LIMIT_PER_EMAIL", TEN_MINUTES, "orders in 10 minutes for one e-mail address"),
}


def _count(request: HttpRequest, quotas: list[Quota], email: str = "") -> Quota | None:
    """Count this request against its client's limit and, given an order's address, that
    address's inbox's (limits whose setting is 0 are off); the first quota it is over."""
    keys = {"client": client_address(request), "email": inbox(email) if email else None}
    limits = [
        (name, keys[name], limit, window)
        for name, (setting, window, _) in LIMITS.items()
        if keys[name] is not None and (limit := getattr(settings, setting))
    ]
    if not limits:
        return None
    counted = RateCounter.hit(limits)
    quotas.extend(counted)
    return next((quota for quota in counted if quota.exceeded), None)


def _too_many(request: HttpRequest, quota: Quota) -> HttpResponse:
    if prefers_html(request):
        context = {"minutes": -(-quota.reset // 60)}
        response = render(request, "orders/too_many.html", context, status=429)
        response["Retry-After"] = str(quota.reset)
        return response
    detail = f"At most {quota.limit} {LIMITS[quota.name][2]}; wait."
    return problem(429, detail, retry_after=quota.reset)


# One click, as RFC 8058 has mail providers send it: a POST with no cookie and no CSRF token.
# The secret in the URL is the credential, and it exists only in the customer's mail.
@csrf_exempt
@allow_methods("GET", "HEAD", "POST")
def stop_mail(request: HttpRequest, secret: str) -> HttpResponse:
    """GET asks to confirm and changes nothing (mail scanners follow links); POST stops."""
    link = StopLink.find(secret)
    if link is None:
        return render(request, "orders/stop_unknown.html", status=404)
    context = {"email": link.customer.email, "already": link.customer.mail_stopped_at}
    if request.method != "POST":
        # Opened again after stopping: say so, instead of asking as if nothing happened.
        page = "orders/stop_done.html" if context["already"] else "orders/stop_confirm.html"
        return render(request, page, context)
    outbox.stop(link.customer_id)
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
