"""A development SMTP server that keeps every message in a Maildir instead of delivering it.

`make run` starts it and points the app's mail at it; `manage.py read_mail` reads the folder.
Run on its own with `python -m crm.mailcatcher --port 1025 --maildir .data/mail`.
"""

import argparse
import mailbox
import signal
import threading

from aiosmtpd.controller import Controller


class MaildirHandler:
    def __init__(self, folder: str):
        self.box = mailbox.Maildir(folder, create=True)

    async def handle_DATA(self, server, session, envelope):
        self.box.add(envelope.original_content)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()

    controller = Controller(MaildirHandler(args.maildir), hostname="127.0.0.1", port=args.port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
