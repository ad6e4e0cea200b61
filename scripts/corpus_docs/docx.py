"""corpus/kestrelbook/onboarding-handbook.docx: the support team's onboarding handbook."""
from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

_WHEN = dt.datetime(2026, 3, 2, 9, 0, 0)


def _zipfix():
    spec = importlib.util.spec_from_file_location(
        "corpus_docs_zipfix", Path(__file__).with_name("_zipfix.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _document():
    import docx

    d = docx.Document()
    d.add_paragraph("Kestrelbook Support Onboarding Handbook", style="Title")
    d.add_paragraph("This handbook is for engineers joining the Kestrelbook support team at "
                    "Orrery Lane Software. Read it during your first week; your onboarding "
                    "buddy will walk through it with you.")
    d.add_heading("Your first two weeks", level=1)
    d.add_paragraph("Every new support engineer is paired with an onboarding buddy for their "
                    "first 38 working days. New engineers shadow live tickets before they "
                    "answer any on their own.")
    d.add_heading("First-week checklist", level=2)
    for item in ["Request access to the ticket queue from the Kestrelbook Ops channel",
                 "Complete the Wren Academy course \"Kestrelbook Workspaces 101\"",
                 "Shadow at least 25 tickets with your buddy",
                 "Take the permissions quiz; the pass mark is 17 out of 20"]:
        d.add_paragraph(item, style="List Bullet")
    d.add_heading("Internal escalation matrix", level=1)
    d.add_paragraph("When a ticket needs more than the first responder can give, hand it on "
                    "following this matrix. The internal targets are stricter than the "
                    "published response times.")
    rows = [("Plan", "First responder", "Hand on to", "Internal handover target"),
            ("Team", "Support Engineer I", "Support Engineer II", "within 6 business hours"),
            ("Business", "Support Engineer II", "Duty Lead (codename Heron desk)",
             "within 90 minutes"),
            ("Enterprise", "Named Technical Account Manager", "Platform on-call (Kite rota)",
             "within 20 minutes")]
    table = d.add_table(rows=len(rows), cols=len(rows[0]))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Tools", level=1)
    d.add_paragraph("Support engineers work from the Perch console, the internal tool that "
                    "shows a workspace's plan, hub and recent audit events. Perch sessions "
                    "time out after 12 minutes without activity.")
    return d


def build(target: Path) -> None:
    _zipfix().save_office(_document(), target, "Orrery Lane Support Enablement",
                          "Kestrelbook Support Onboarding Handbook", _WHEN)
