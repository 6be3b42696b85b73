"""A real SMTP server on a loopback port (aiosmtpd), with the failures tests need."""

import asyncio
import socket
import time
from contextlib import contextmanager
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from django.test import override_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Handler:
    def __init__(self):
        self.messages = []  # (envelope recipients, parsed message)
        self.raw = []  # each accepted message's bytes, as they came over the wire
        self.connections = 0
        self.refuse = {}  # recipient -> SMTP reply, e.g. "550 5.1.1 No such user"
        self.offered = []  # every RCPT TO address, accepted or not
        self.senders = []  # each accepted message's envelope sender (MAIL FROM)
        self.hang_up_on = set()  # recipients answered "421 closing connection", then dropped
        self.temporary_failures = 0  # DATA answered 451 this many times
        self.delay = 0.0  # seconds to wait before answering RCPT
        self.step_delay = 0.0  # seconds to wait before answering MAIL, RCPT and DATA
        self.data_delay = 0.0  # seconds to hold DATA before answering it
        # Seconds to answer DATA one byte a second (a "250-" line that trickles in first):
        # each read is quick, the whole reply slow.
        self.trickle = 0
        self.trickle_to = {}  # recipient -> seconds: the same, for mail to them only
        self.message_ids = []  # the Message-ID of every DATA, accepted or not
        self.on_data = None  # called (in the server's thread) as each DATA arrives
        self.on_accept = None  # called with the number of messages accepted so far
        self.port = None  # where smtp_server() listens
        self.sessions = 0  # open now
        self.most_sessions = None  # more at once are turned away at the greeting with 421
        self.turned_away = []  # when each was (time.monotonic())
        self.accepted_at = []  # when each message was accepted (time.monotonic())

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await asyncio.sleep(self.step_delay)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await asyncio.sleep(self.delay + self.step_delay)
        self.offered.append(address)
        if address in self.hang_up_on:
            # What a server that gives up on a session does: 421, then it closes.
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 Too many errors, closing connection"
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.step_delay)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.message_ids.append(parsed["Message-ID"])
        if self.on_data:
            self.on_data(parsed)
        await asyncio.sleep(self.data_delay)
        trickle = max([self.trickle, *(self.trickle_to.get(r, 0) for r in envelope.rcpt_tos)])
        for byte in f"250-{'.' * max(trickle - 7, 0)}\r\n".encode()[:trickle]:
            server._writer.write(bytes([byte]))
            await server._writer.drain()
            await asyncio.sleep(1)
        if self.temporary_failures:
            self.temporary_failures -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        self.accepted_at.append(time.monotonic())
        self.senders.append(envelope.mail_from)
        self.raw.append(envelope.original_content)
        if self.on_accept:
            self.on_accept(len(self.messages))
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        return sorted(address for rcpt_tos, _ in self.messages for address in rcpt_tos)


class Session(SMTP):
    """A session, turned away at its greeting when the server has `most_sessions` open
    already, as a relay that limits a client's concurrent connections does."""

    def connection_made(self, transport):
        self.event_handler.sessions += 1
        super().connection_made(transport)

    def connection_lost(self, error):
        self.event_handler.sessions -= 1
        super().connection_lost(error)

    async def _handle_client(self):
        handler = self.event_handler
        if handler.most_sessions is not None and handler.sessions > handler.most_sessions:
            handler.turned_away.append(time.monotonic())
            await self.push("421 4.7.0 Too many concurrent SMTP connections, try again later")
            self.transport.close()
            return
        await super()._handle_client()


class Server(Controller):
    def factory(self):
        return Session(self.handler, **self.SMTP_kwargs)


def mailer_settings(port: int, timeout: float = 5):
    return override_settings(
        MAILERS={
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": timeout},
            }
        }
    )


@contextmanager
def smtp_server():
    """Yield the Handler of a running server; the default mailer points at it meanwhile."""
    handler = Handler()
    handler.port = free_port()
    controller = Server(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        with mailer_settings(controller.port):
            yield handler
    finally:
        controller.stop()


@contextmanager
def no_smtp_server():
    """The default mailer points at a loopback port where nothing listens."""
    with mailer_settings(free_port()):
        yield
