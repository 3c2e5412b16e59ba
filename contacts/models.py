from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Upper


class LifecycleStage(models.TextChoices):
    AWARENESS = "awareness", "Awareness"
    EDUCATION = "education", "Education"
    EVALUATION = "evaluation", "Evaluation"
    PURCHASE = "purchase", "Purchase"
    REORDER = "reorder", "Reorder"


class CustomerType(models.TextChoices):
    PROSPECT = "prospect", "Prospect"
    CUSTOMER = "customer", "Customer"
    PARTNER = "partner", "Partner"
    RESELLER = "reseller", "Reseller"
    OTHER = "other", "Other"


def _owner(related_name: str) -> models.ForeignKey:
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name=related_name,
    )


class Account(models.Model):
    """A company the tenant sells to or works with."""

    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=200, blank=True)
    industry = models.CharField(max_length=100, blank=True)
    employees = models.PositiveIntegerField(null=True, blank=True, help_text="Company size")
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(
        max_length=20, choices=CustomerType.choices, default=CustomerType.PROSPECT
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="subsidiaries"
    )
    phone = models.CharField(max_length=50, blank=True)
    street = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    external_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    owner = _owner("accounts")
    # Partner organisations that work this account (and so see it, its contacts and deals).
    shared_with = models.ManyToManyField(
        "users.PartnerOrganization", blank=True, related_name="accounts"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["name", "id"]),
            models.Index(fields=["owner", "name", "id"]),
            GinIndex(fields=["tags"], name="account_tags_gin"),
            GinIndex(OpClass(Upper("name"), name="gin_trgm_ops"), name="account_name_trgm"),
            # An import finds the accounts its rows name by name, a chunk at a time.
            models.Index(Upper("name"), name="account_name_upper"),
            # The search's OR of name, domain and phone becomes one bitmap of the three indexes.
            GinIndex(OpClass(Upper("domain"), name="gin_trgm_ops"), name="account_domain_trgm"),
            GinIndex(OpClass(Upper("phone"), name="gin_trgm_ops"), name="account_phone_trgm"),
        ]

    def __str__(self):
        return self.name


class Contact(models.Model):
    """A person at an account (or on their own) whom the tenant markets to, sells to or serves."""

    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    other_emails = ArrayField(models.EmailField(), default=list, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    other_phones = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    title = models.CharField(max_length=150, blank=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    owner = _owner("contacts")
    territory = models.CharField(max_length=100, blank=True)
    customer_type = models.CharField(
        max_length=20, choices=CustomerType.choices, default=CustomerType.PROSPECT
    )
    # The marketing tool or campaign that brought the contact in.
    source = models.CharField(max_length=100, blank=True)
    lifecycle_stage = models.CharField(
        max_length=20, choices=LifecycleStage.choices, default=LifecycleStage.AWARENESS
    )
    interests = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    do_not_email = models.BooleanField(default=False)
    do_not_call = models.BooleanField(default=False)
    do_not_mail = models.BooleanField(default=False)
    external_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["last_name", "first_name", "id"]),
            models.Index(fields=["owner", "last_name", "first_name", "id"]),
            models.Index(fields=["email"]),
            # Text search gathers the contacts of matching companies from this index alone.
            models.Index(fields=["account", "id"], name="contact_account_id"),
            # The API's sync order (`updated_at`, then id) and its keyset pages, at any depth.
            models.Index(fields=["updated_at", "id"], name="contact_updated_id"),
            # The API's lookup by e-mail in any case (`email__iexact` compares UPPER(email)).
            models.Index(Upper("email"), name="contact_email_upper"),
            # The list's territory and life-cycle filters; with the included columns, their
            # capped count is read from the index alone.
            models.Index(
                Upper("territory"),
                "lifecycle_stage",
                name="contact_territory_stage",
                include=["territory", "id"],
            ),
            # Substring search (icontains compares UPPER(column)) and typo-tolerant name search.
            *(
                GinIndex(OpClass(Upper(name), name="gin_trgm_ops"), name=f"contact_{name}_trgm")
                for name in ("first_name", "last_name", "email", "phone")
            ),
        ]

    def __str__(self):
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class _LinkedToRecord(models.Model):
    """Something filed against a contact, an account and/or an opportunity."""

    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    opportunity = models.ForeignKey(
        "opportunities.Opportunity",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )

    class Meta:
        abstract = True


def _linked_check(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=models.Q(contact__isnull=False)
        | models.Q(account__isnull=False)
        | models.Q(opportunity__isnull=False),
        name=name,
    )


class Activity(_LinkedToRecord):
    """Something that happened with a customer: a call, a meeting, an e-mail, a letter or a note,
    with who did it, when, and how it went."""

    class Kind(models.TextChoices):
        CALL = "call", "Call"
        MEETING = "meeting", "Meeting"
        EMAIL = "email", "E-mail"
        LETTER = "letter", "Letter"
        NOTE = "note", "Note"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    subject = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    outcome = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="activities"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "activities"
        constraints = [_linked_check("activity_linked_to_a_record")]
        indexes = [models.Index(fields=["user", "-occurred_at"])]

    def __str__(self):
        return self.subject


class Task(_LinkedToRecord):
    """An action item: something someone has to do by a date, about a customer record."""

    class Priority(models.IntegerChoices):
        LOW = 1, "Low"
        NORMAL = 2, "Normal"
        HIGH = 3, "High"

    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tasks"
    )
    due_on = models.DateField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    done_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [_linked_check("task_linked_to_a_record")]
        indexes = [
            models.Index(fields=["assignee", "done_at", "due_on"]),
            # The API's sync order (`updated_since`, oldest change first).
            models.Index(fields=["updated_at", "id"]),
        ]

    def __str__(self):
        return self.title

    @property
    def is_done(self) -> bool:
        return self.done_at is not None


class Appointment(models.Model):
    """A meeting at a time and place with colleagues and customers; its organizer and the users
    attending see it in their calendar feed and get a reminder e-mail before it starts."""

    title = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    location = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    organizer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="organized_appointments"
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="appointments"
    )
    contacts = models.ManyToManyField(Contact, blank=True, related_name="appointments")
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="appointments"
    )
    remind_minutes_before = models.PositiveIntegerField(default=15)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="appointment_ends_after_start",
                violation_error_message="The end must be after the start.",
            ),
        ]
        indexes = [
            models.Index(fields=["starts_at"]),
            models.Index(fields=["reminder_sent_at", "starts_at"]),
            models.Index(fields=["updated_at", "id"]),
        ]

    def __str__(self):
        return self.title


class RecordKind(models.TextChoices):
    ACCOUNT = "account", "Accounts"
    CONTACT = "contact", "Contacts"


class MergeJournal(models.Model):
    """One merge of two records that were the same customer: which was kept, which was folded
    into it, and all that is needed to undo it (the folded record's own values, the kept record's
    values before the merge, and which related rows were moved from one to the other)."""

    kind = models.CharField(max_length=10, choices=RecordKind.choices)
    kept_id = models.BigIntegerField()
    merged_id = models.BigIntegerField()
    # {"kept_before": {...}, "merged": {...}, "moved": {"<app.model>.<field>": [ids]}, ...}
    snapshot = models.JSONField(default=dict)
    summary = models.CharField(max_length=300)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    merged_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "merge journal"
        indexes = [models.Index(fields=["kind", "kept_id"]), models.Index(fields=["-merged_at"])]

    def __str__(self):
        return self.summary


class ImportJob(models.Model):
    """A CSV file of accounts or contacts a user uploaded: how its columns map onto our fields,
    how rows are matched to existing records, and how far the Celery task that imports it got,
    with the rows it refused and why."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class MatchOn(models.TextChoices):
        NOTHING = "", "Always create"
        EMAIL = "email", "E-mail"
        EXTERNAL_ID = "external_id", "External ID"

    kind = models.CharField(max_length=10, choices=RecordKind.choices)
    file_name = models.CharField(max_length=255)
    # The decoded file, kept in the tenant's schema (so it never crosses tenants).
    content = models.TextField()
    # {"<csv header>": "<field name>" or ""}
    mapping = models.JSONField(default=dict)
    match_on = models.CharField(max_length=20, choices=MatchOn.choices, blank=True)
    skip_invalid = models.BooleanField(
        default=False, help_text="Import the good rows and report the bad ones."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UPLOADED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    # [{"row": 12, "field": "email", "message": "..."}]; row numbers as in the file (header = 1).
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A dry run imports the whole file and takes it all back: the counts and errors above are
    # then what the import would do, as of `checked_at` (cleared when the mapping changes).
    dry_run = models.BooleanField(default=False)
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.file_name


class LetterTemplate(models.Model):
    """A letter the tenant sends by post, with merge fields filled in for each contact
    (mail merge) and produced as a PDF."""

    name = models.CharField(max_length=100, unique=True)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(help_text="Merge fields such as {{ contact.first_name }}.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name


class LetterBatch(models.Model):
    """Letters from one template to every contact of a filtered contact list (mail merge), made
    by a Celery task into one PDF to print; each letter is also logged on its contact's
    timeline, as a letter written from the contact's page is."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Writing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    template = models.ForeignKey(
        LetterTemplate, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    template_name = models.CharField(max_length=100)
    # The contact list's filters, as its query string: the letters go to the contacts they
    # select when the task runs, among those the user who asked may see.
    query = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # Contacts the filters selected: when the batch was asked for, then when it was written.
    total = models.PositiveIntegerField(default=0)
    written = models.PositiveIntegerField(default=0)
    # Contacts who asked not to receive mail: no letter for them.
    skipped = models.PositiveIntegerField(default=0)
    # Kept in the tenant's schema, so a batch never crosses tenants.
    pdf = models.BinaryField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.template_name} ({self.created_at:%Y-%m-%d})"
