import mailbox

from django.core.management import BaseCommand, CommandError

from crm.embedded import data_dir


class Command(BaseCommand):
    help = "Show the e-mails caught by `make run`'s local mail catcher, newest last."

    def add_arguments(self, parser):
        parser.add_argument("--last", type=int, default=5, help="How many messages to show.")
        parser.add_argument("--to", default="", help="Only messages to this address.")

    def handle(self, *args, last, to, **options):
        folder = data_dir() / "mail"
        if not folder.exists():
            raise CommandError(f"No caught mail yet ({folder} does not exist).")
        box = mailbox.Maildir(folder, create=False)
        messages = sorted(box, key=lambda m: m.get_date())
        if to:
            messages = [m for m in messages if to.lower() in (m["To"] or "").lower()]
        for message in messages[-last:]:
            self.stdout.write(
                f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n"
            )
            body = (
                message.get_payload(decode=True)
                if not message.is_multipart()
                else message.get_payload(0).get_payload(decode=True)
            )
            self.stdout.write((body or b"").decode(errors="replace"))
            self.stdout.write("-" * 72)
