"""The development mailer: each notice on the console as a person reads it."""

from django.core.mail.backends.console import EmailBackend as DjangoConsoleBackend


class EmailBackend(DjangoConsoleBackend):
    # Django's console backend prints the MIME source, where a Russian body is base64.
    def write_message(self, message) -> None:
        self.stream.write(
            f"From: {message.from_email}\n"
            f"To: {', '.join(message.to)}\n"
            f"Subject: {message.subject}\n\n"
            f"{message.body}\n"
            f"{'-' * 79}\n"
        )
