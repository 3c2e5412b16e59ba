"""Campaign messages written as bytes (campaigns.mime) read back with the email package as the
message meant: headers, encoded non-ASCII headers, both bodies, and long lines."""

from email import message_from_bytes, policy

from django.core.mail.message import sanitize_address

from campaigns.mime import LONGEST_LINE, CampaignMime
from campaigns.templating import RenderedEmail


def _read(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def test_a_message_reads_back_with_its_headers_and_both_bodies(settings):
    settings.DEFAULT_FROM_EMAIL = "Société Générale <news@example.test>"
    rendered = RenderedEmail(
        subject="Bonjour Zoë, nos offres",
        preheader="",
        html="<html><body><p>Bonjour Zoë</p>\n<p>€ 10</p></body></html>",
        text="Bonjour Zoë\r\n€ 10\n",
    )
    data = CampaignMime().message(
        rendered,
        to="zoe@example.test",
        headers={"Message-ID": "<7.42@alpha.example.test>", "List-Unsubscribe": "<https://u/>"},
    )

    assert all(len(line) <= LONGEST_LINE for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = _read(data)
    assert message["Subject"] == "Bonjour Zoë, nos offres"
    assert message["From"].addresses[0].display_name == "Société Générale"
    assert message["To"] == "zoe@example.test"
    assert message["Message-ID"] == "<7.42@alpha.example.test>"
    assert message["List-Unsubscribe"] == "<https://u/>"
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_payload()
    assert text.get_content().replace("\r\n", "\n") == "Bonjour Zoë\n€ 10\n"
    assert html.get_content_type() == "text/html"
    assert html.get_content().replace("\r\n", "\n") == (
        "<html><body><p>Bonjour Zoë</p>\n<p>€ 10</p></body></html>"
    )


def test_a_line_too_long_for_smtp_goes_quoted_printable_and_reads_back_whole():
    long_line = "<p>" + "é" * 1500 + "</p>"
    rendered = RenderedEmail(subject="Hi", preheader="", html=long_line, text="short")
    data = CampaignMime("CRM <no-reply@example.test>").message(
        rendered, to="a@example.test", headers={}
    )

    assert all(len(line) <= LONGEST_LINE for line in data.split(b"\r\n"))
    text, html = _read(data).get_payload()
    assert text["Content-Transfer-Encoding"] == "8bit"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert html.get_content() == long_line


def test_each_message_has_its_own_boundary():
    mime = CampaignMime("CRM <no-reply@example.test>")
    rendered = RenderedEmail(subject="Hi", preheader="", html="<p>x</p>", text="x")
    one = _read(mime.message(rendered, to="a@example.test", headers={}))
    two = _read(mime.message(rendered, to="b@example.test", headers={}))
    assert one.get_boundary() != two.get_boundary()
    assert mime.envelope_from == "CRM <no-reply@example.test>"


def test_a_long_non_ascii_subject_is_folded_onto_crlf_lines_only():
    subject = "Grüße aus München: unsere Angebote für Sie und Ihr Team im Frühling " * 2
    rendered = RenderedEmail(subject=subject, preheader="", html="<p>x</p>", text="x")
    data = CampaignMime("CRM <no-reply@example.test>").message(
        rendered, to="a@example.test", headers={}
    )

    assert b"\n" not in data.replace(b"\r\n", b"")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert any(line.startswith(b" =?utf-8?") for line in head.split(b"\r\n"))
    assert _read(data)["Subject"] == " ".join(subject.split())


ADDRESSES = [
    "ada@example.test",
    "Ada.Lovelace+news@Mail.Example.TEST",
    "o'neil@example.ie",
    "a..b@example.test",
    ".a@example.test",
    "a b@example.test",
    "zoë@example.test",
    "ada@bücher.example",
    "ada@-example.test",
    "Ada <ada@example.test>",
    "ada@" + "b" * 63 + ".test",
]


def test_the_envelope_recipient_is_what_djangos_sanitize_address_makes_of_it():
    mime = CampaignMime("CRM <no-reply@example.test>")

    for address in ADDRESSES:
        assert mime.envelope_to(address) == sanitize_address(address, "utf-8"), address
