from django.conf import settings
from django.db import models


class TimelineEntry(models.Model):
    """One thing a customer did or was told, as shown on the 360-degree page.

    Written by the service that makes the change, in the same transaction. `account` is the
    account of the contact at the time (or the account the entry is about), so that an account's
    page reads its whole timeline from one index.
    """

    class Kind(models.TextChoices):
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "E-mail"
        LETTER = "letter", "Letter"
        NOTE = "note", "Note"
        TASK = "task", "Task"
        APPOINTMENT = "appointment", "Appointment"
        OPPORTUNITY = "opportunity", "Opportunity"
        RECORD = "record", "Record change"
        PAGE_VIEW = "page_view", "Page view"
        EMAIL_OPEN = "email_open", "E-mail opened"
        EMAIL_CLICK = "email_click", "E-mail link clicked"
        FORM = "form", "Form filled"

    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.CASCADE, related_name="timeline"
    )
    account = models.ForeignKey(
        "contacts.Account", null=True, blank=True, on_delete=models.CASCADE, related_name="timeline"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    summary = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "timeline entries"
        indexes = [
            models.Index(fields=["contact", "-occurred_at", "-id"]),
            models.Index(fields=["account", "-occurred_at", "-id"]),
        ]

    def __str__(self):
        return self.summary


class AuditEntry(models.Model):
    """Who changed which fields of a record, from what to what, and when."""

    model = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    action = models.CharField(max_length=10)  # created, updated, deleted
    changes = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["model", "object_id", "-at"])]

    def __str__(self):
        return f"{self.action} {self.model} #{self.object_id}"
