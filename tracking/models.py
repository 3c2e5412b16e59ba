from django.db import models


class TimelineEntry(models.Model):
    """One thing a contact did or was told, as shown on their 360-degree page."""

    class Kind(models.TextChoices):
        NOTE = "note", "Note"
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "E-mail"
        PAGE_VIEW = "page_view", "Page view"

    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="timeline"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    summary = models.CharField(max_length=300)

    class Meta:
        verbose_name_plural = "timeline entries"
        indexes = [models.Index(fields=["contact", "-occurred_at"])]

    def __str__(self):
        return self.summary
