"""Pages of the CSV import: upload, map the columns (with a preview), follow the job, read and
download the rows it refused. The work is in contacts.imports."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F, Func, IntegerField
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from contacts import imports
from contacts.models import ImportJob, RecordKind
from crm.access import require

ERRORS_SHOWN = 200


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label="Import", choices=RecordKind.choices, widget=forms.RadioSelect)
    file = forms.FileField(
        label="CSV file",
        help_text="Comma, semicolon or tab separated, with a header row; up to 250 MB (a million "
        "rows or more).",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
    )
    encoding = forms.ChoiceField(
        label="Encoding",
        choices=[(code, f"{name}: {note}") for code, (name, note) in imports.ENCODINGS.items()],
        initial="utf-8",
        # A post without it (a script's) means UTF-8.
        required=False,
        help_text="Files with a byte-order mark (UTF-8 or UTF-16) are read as they say.",
    )


class MappingForm(forms.Form):
    """One select per CSV column, plus how rows find existing records."""

    match_on = forms.ChoiceField(label="Existing records", required=False)
    skip_invalid = forms.BooleanField(
        label="Import the good rows and report the bad ones (otherwise one bad row stops it all)",
        required=False,
    )

    def __init__(self, *args, job: ImportJob, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        self.headers = imports.job_headers(job)
        targets = [("", "— do not import —")]
        targets += [(t.name, t.label) for t in imports.targets_for(job.kind)]
        self.column_fields = []
        for index, header in enumerate(self.headers):
            name = f"column_{index}"
            self.fields[name] = forms.ChoiceField(
                label=header,
                choices=targets,
                required=False,
                initial=job.mapping.get(header, ""),
            )
            self.column_fields.append(self[name])
        labels = {t.name: t.label for t in imports.targets_for(job.kind)}
        self.fields["match_on"].choices = [("", "Always create a new record")] + [
            (m, f"Update the one with the same {labels[m]}") for m in imports.MATCH_ON[job.kind]
        ]
        self.fields["match_on"].initial = job.match_on
        self.fields["skip_invalid"].initial = job.skip_invalid

    def mapping(self) -> dict[str, str]:
        return {h: self.cleaned_data[f"column_{i}"] for i, h in enumerate(self.headers)}

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            for problem in imports.mapping_problems(
                kind=self.job.kind, mapping=self.mapping(), match_on=cleaned["match_on"]
            ):
                self.add_error(None, problem)
        return cleaned


def _job(request, pk) -> ImportJob:
    """The user's own job (any job for an admin), or 404; with the start of its file only."""
    return get_object_or_404(imports.jobs_with_head(imports.import_jobs_for(request.user)), pk=pk)


@login_required
@require("imports.run")
def import_list(request):
    jobs = (
        imports.import_jobs_for(request.user)
        .defer("content", "errors")
        .annotate(
            error_count=Func(
                F("errors"), function="jsonb_array_length", output_field=IntegerField()
            )
        )
        .order_by("-created_at", "-id")[:50]
    )
    return render(request, "contacts/imports/import_list.html", {"jobs": list(jobs)})


@login_required
@require("imports.run")
def import_upload(request):
    kind = request.GET.get("kind")
    form = UploadForm(
        request.POST or None,
        request.FILES or None,
        initial={"kind": kind if kind in RecordKind.values else RecordKind.CONTACT},
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = imports.import_job_create(
                actor=request.user,
                kind=form.cleaned_data["kind"],
                file=form.cleaned_data["file"],
                encoding=form.cleaned_data["encoding"] or "utf-8",
            )
        except imports.ImportFileError as refused:
            form.add_error("file", str(refused))
        else:
            return redirect("contacts:import_map", pk=job.pk)
    return render(request, "contacts/imports/import_upload.html", {"form": form})


@login_required
@require("imports.run")
def import_map(request, pk):
    """Choose what each column is; "Update preview" saves the choice and shows the first rows as
    they would be imported, "Check the whole file" saves it and queues a dry run (whose counts
    and refused rows this page then shows), "Start import" saves it and queues the job."""
    job = _job(request, pk)
    if job.status != ImportJob.Status.UPLOADED:
        return redirect("contacts:import_detail", pk=job.pk)
    form = MappingForm(request.POST or None, job=job)
    if request.method == "POST" and form.is_valid():
        try:
            imports.import_job_map(
                actor=request.user,
                job=job,
                mapping=form.mapping(),
                match_on=form.cleaned_data["match_on"],
                skip_invalid=form.cleaned_data["skip_invalid"],
            )
        except imports.ImportMappingError as refused:
            for problem in refused.problems:
                form.add_error(None, problem)
        else:
            if "start" in request.POST:
                imports.import_job_start(actor=request.user, job=job)
                return redirect("contacts:import_detail", pk=job.pk)
            if "check" in request.POST:
                imports.import_job_check(actor=request.user, job=job)
                return redirect("contacts:import_detail", pk=job.pk)
            return redirect("contacts:import_map", pk=job.pk)
    problems = imports.mapping_problems(kind=job.kind, mapping=job.mapping, match_on=job.match_on)
    preview = [] if problems else imports.import_preview(job=job, user=request.user)
    return render(
        request,
        "contacts/imports/import_map.html",
        {
            "job": job,
            "form": form,
            "problems": [] if form.is_bound else problems,
            "preview": preview,
            "preview_headers": [h for h in form.headers if job.mapping.get(h)],
            "refused_rows": len({e["row"] for e in job.errors}),
            "errors": job.errors[:ERRORS_SHOWN],
        },
    )


@login_required
@require("imports.run")
def import_detail(request, pk):
    """The job's progress (polled by htmx while it runs), then its counts and refused rows."""
    job = get_object_or_404(imports.import_jobs_for(request.user).defer("content"), pk=pk)
    if job.status == ImportJob.Status.UPLOADED:
        # Not started, or back from a dry run: the mapping page (for htmx's poll, a whole page).
        if request.htmx:
            return HttpResponseClientRedirect(reverse("contacts:import_map", args=[job.pk]))
        return redirect("contacts:import_map", pk=job.pk)
    progress = imports.import_job_progress(job)
    context = {
        "job": job,
        "live": job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING),
        "progress": progress,
        "percent": progress * 100 // job.total_rows if job.total_rows else 100,
        "errors": job.errors[:ERRORS_SHOWN],
    }
    template = (
        "contacts/imports/_status.html" if request.htmx else "contacts/imports/import_detail.html"
    )
    return render(request, template, context)


@login_required
@require("imports.run")
def import_errors(request, pk):
    job = get_object_or_404(imports.import_jobs_for(request.user).defer("content"), pk=pk)
    if not job.errors:
        messages.info(request, "This import has no errors to report.")
        return redirect("contacts:import_detail", pk=job.pk)
    response = HttpResponse(imports.import_errors_csv(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
    return response
