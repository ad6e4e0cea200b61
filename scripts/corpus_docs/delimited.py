"""The starter CSV: Kestrelbook's integrations catalogue (plain text, so deterministic as is)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

ROWS = [
    ("Integration", "Category", "Plans", "Sync interval", "Notes"),
    ("Slack", "chat", "all plans", "real time", "posts page changes to a channel"),
    ("Microsoft Teams", "chat", "Team and up", "real time", "tab app and notifications"),
    ("Jira Cloud", "issue tracking", "Team and up", "every 5 minutes", "two-way status sync"),
    ("GitHub", "code", "all plans", "every 2 minutes", "links pull requests to pages"),
    ("Salesforce", "CRM", "Business and up", "every 15 minutes",
     "account pages, read-only; capped at 80,000 records per workspace"),
    ("Google Drive", "files", "all plans", "every 10 minutes", "embeds and previews"),
    ("Okta", "identity", "Business and up", "every 30 minutes",
     "SCIM provisioning; group push limited to 400 groups"),
    ("Zendesk", "support", "Business and up", "every 20 minutes",
     "turns solved tickets into draft help pages"),
]


def build(target: Path) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(ROWS)
    target.write_bytes(out.getvalue().encode("utf-8"))
