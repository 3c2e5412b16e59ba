"""CSV downloads of what a report page shows."""

import csv

from django.http import HttpResponse


def csv_response(*, filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        # A cell a spreadsheet would run as a formula is written as text.
        writer.writerow(
            [
                "'" + cell
                if isinstance(cell, str) and cell.startswith(("=", "+", "-", "@"))
                else cell
                for cell in row
            ]
        )
    return response


def wants_csv(request) -> bool:
    return request.GET.get("format") == "csv"
