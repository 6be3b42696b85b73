"""`manage.py check --deploy`: can the notices go out, from a domain mail can come from, with
links that lead somewhere? `check_serving` refuses the placeholders too."""

import ipaddress
from email.utils import parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

SITE_URL_MISSING = (
    "SITE_URL is not set: every notice carries a link to stop mail, made from it. "
    "Set it to the https:// address customers reach R4C at."
)
# Names no one can own (RFC 2606, RFC 6761): a value at one is a placeholder left in.
RESERVED = ("example", "test", "invalid", "localhost")
EXAMPLES = ("example.com", "example.net", "example.org")


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower().rstrip(".")


def _reserved(domain: str) -> bool:
    return domain.rsplit(".", 1)[-1] in RESERVED or any(
        f".{domain}".endswith(f".{example}") for example in EXAMPLES
    )


def placeholders() -> list[str]:
    """The identity settings still at a reserved domain, each as "NAME=value is at …". A site
    on this machine (localhost, 127.0.0.1) stays allowed, to try the service before its proxy."""
    site = (urlsplit(settings.SITE_URL).hostname or "").rstrip(".")
    named = [("SITE_URL", site)] if site.rpartition(".")[2] != "localhost" else []
    named += [
        (name, _domain(getattr(settings, name)))
        for name in ("DEFAULT_FROM_EMAIL", "BOUNCE_ADDRESS")
    ]
    return [
        f"{name}={getattr(settings, name)!r} is at {domain}, a reserved name no one owns: "
        "set the factory's own"
        for name, domain in named
        if _reserved(domain)
    ]


def sender_domain_problem(sender: str) -> str:
    """Why mail from `sender` would be refused or land in spam; "" if its domain can work."""
    domain = _domain(sender)
    if not domain:
        return "has no domain"
    try:
        ipaddress.ip_address(domain.strip("[]"))
        return f"is at an IP address ({domain}), which SPF, DKIM and DMARC cannot vouch for"
    except ValueError:
        pass
    if domain.rsplit(".", 1)[-1] == "local":  # multicast DNS (RFC 6762)
        return f"is at {domain}, a name only this network resolves"
    if "." not in domain:
        return f"is at {domain}, a host name without a dot, not a mail domain"
    return ""


@register(Tags.security, deploy=True)
def check_mail_settings(app_configs, **kwargs) -> list[Warning]:
    found = [Error(problem, id="orders.E001") for problem in placeholders()]
    if not settings.SITE_URL:
        found.append(
            Warning(
                "SITE_URL is not set: the mail worker will not start without it.",
                hint="Set it to the https:// address customers reach R4C at.",
                id="orders.W002",
            )
        )
    if not settings.FACTORY_CONTACT:
        found.append(
            Warning(
                "FACTORY_CONTACT is empty: the notice asks the customer to contact the factory "
                "and gives no way to.",
                hint="Set it to a phone number or an address customers can reach.",
                id="orders.W005",
            )
        )
    sender = _domain(settings.DEFAULT_FROM_EMAIL)
    if not settings.BOUNCE_ADDRESS:
        found.append(
            Warning(
                "BOUNCE_ADDRESS is not set: bounces that come after the mail server took a "
                "notice, and complaints, are never read, and dead mailboxes are mailed again.",
                hint="Set it to a mailbox at the sender's domain that is piped into "
                "`manage.py bounce` (docs/production.md: Sender identity).",
                id="orders.W003",
            )
        )
    elif not f".{_domain(settings.BOUNCE_ADDRESS)}".endswith(f".{sender}"):  # DMARC relaxed
        found.append(
            Warning(
                f"BOUNCE_ADDRESS is at {_domain(settings.BOUNCE_ADDRESS)}, not at the From "
                f"domain {sender}: SPF then vouches for another domain than DMARC checks.",
                hint="Use a bounce mailbox at the From domain (or a subdomain of it).",
                id="orders.W004",
            )
        )
    problem = sender_domain_problem(settings.DEFAULT_FROM_EMAIL)
    if not problem:
        return found
    return found + [
        Warning(
            f"DEFAULT_FROM_EMAIL ({settings.DEFAULT_FROM_EMAIL}) {problem}: mailbox providers "
            "will reject or junk the notices.",
            hint="Send from an address at the factory's own domain, with SPF, DKIM and DMARC "
            "set up for it (docs/production.md: Sender identity).",
            id="orders.W001",
        )
    ]
