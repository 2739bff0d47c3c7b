"""Opening review and description commands (registered through the ``archive.commands`` entry point):

``archive archives policy CODE --on-age open|review``, ``archive access redecide [--today DATE]``,
``archive access queue``, ``archive access review ARCHIVE/CODE`` (put up for review), ``archive access decide
ID… open|restricted --reason TEXT [--review-on DATE]``, ``archive access opinion ID --office … --opinion …``,
``archive records edit ARCHIVE/CODE --title …`` and ``archive records history ARCHIVE/CODE``.

The public index follows each change through the outbox (``archive serve`` drains it every few seconds);
the staff API indexes right after its commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from archive.cli import (
    JsonOpt,
    access_app,
    archives_app,
    new_table,
    operator,
    out,
    parse_date,
    print_json,
    records_app,
    run,
)

if TYPE_CHECKING:
    from archive.config import Settings

DateOpt = Annotated[str | None, typer.Option(help="YYYY-MM-DD")]


def archives_policy(
    code: Annotated[str, typer.Argument(help="The archive's code")],
    on_age: Annotated[
        str, typer.Option("--on-age", help="open: auto records open at 25 years; review: they are queued")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set what happens when an auto record's 25 years arrive (到期处理方式): open, or review first."""

    def body(settings: Settings) -> None:
        from archive import db, review

        with db.write_session(settings) as s:
            changed = review.set_policy(s, code, on_age, actor=operator())
        result = {"archive": code, "on_age": on_age, "changed": changed}
        if as_json:
            print_json(result)
        else:
            out.print(f"{code}: on age → {on_age}" + ("" if changed else " (unchanged)"), highlight=False)

    run(body, as_json)


def access_redecide(
    today: Annotated[
        str | None, typer.Option(help="Decide as on this day (YYYY-MM-DD); default today")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-decide auto records whose 25 years have come: open them by the rule, or queue them for review
    under a "review first" policy; bring scheduled reviews that fell due into the queue. Never closes."""

    def body(settings: Settings) -> None:
        from archive import review

        counts = review.redecide(settings, parse_date(today))
        if as_json:
            print_json(counts.as_dict())
        else:
            c = counts.as_dict()
            out.print(
                f"{c['today']}: {c['checked']} due, {c['opened']} opened, {c['queued']} queued for review, "
                f"{c['scheduled_due']} scheduled reviews due",
                highlight=False,
            )

    run(body, as_json)


def _print_reviews(rows: list[dict[str, Any]]) -> None:
    table = new_table("id", "record", "题名", "why", "state", "due", "access")
    for r in rows:
        table.add_row(
            str(r["id"]), r["record"], r["title"], r["why"], r["state"], r["due_on"], r["access_status"]
        )
    out.print(table)


def access_queue(
    archive: Annotated[list[str] | None, typer.Option(help="Only this archive's reviews")] = None,
    state: Annotated[str, typer.Option(help="pending | scheduled | decided")] = "pending",
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List the opening-review queue (开放审核), in the order the reviews fall due."""

    def body(settings: Settings) -> None:
        from archive import db, review

        with db.read_session(settings) as s:
            rows = [
                review.review_summary(r)
                for r in review.list_reviews(s, archive or None, state=state, limit=limit)
            ]
        if as_json:
            print_json(rows)
        else:
            _print_reviews(rows)

    run(body, as_json)


def access_review(
    ref: Annotated[str, typer.Argument(help="ARCHIVE/CODE")],
    note: Annotated[str | None, typer.Option(help="Why it should be reviewed")] = None,
    due: DateOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a record up for opening review."""

    def body(settings: Settings) -> None:
        from archive import db, review, services

        archive_code, code = services.split_record_ref(ref)
        with db.write_session(settings) as s:
            row, created = review.put_up(
                s, archive_code, code, actor=operator(), note=note, due_on=parse_date(due)
            )
            result = {**review.review_summary(row), "created": created}
        if as_json:
            print_json(result)
        else:
            out.print(
                f"{ref}: review #{result['id']} " + ("queued" if created else "already in the queue"),
                highlight=False,
            )

    run(body, as_json)


def access_decide(
    review_ids: Annotated[list[int], typer.Argument(help="Review ids (a batch gets the same decision)")],
    status: Annotated[str, typer.Option(help="open | restricted")],
    reason: Annotated[str, typer.Option(help="Why (kept on the record and its event)")],
    review_on: Annotated[
        str | None, typer.Option("--review-on", help="Restricted: the next review's date, YYYY-MM-DD")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide pending reviews, all or none: open, or keep restricted with a reason and a next review date."""

    def body(settings: Settings) -> None:
        from archive import db, review

        next_on = parse_date(review_on)
        items = [review.Decision(i, status, reason, next_on) for i in review_ids]
        with db.write_session(settings) as s:
            results = review.decide(s, items, actor=operator(), open_after_years=settings.open_after_years)
        if as_json:
            print_json(results)
        else:
            for r in results:
                out.print(f"#{r['review']} {r['record']}: {r['access_status']}", highlight=False)

    run(body, as_json)


def access_opinion(
    review_id: Annotated[int, typer.Argument(help="The review's id")],
    office: Annotated[str, typer.Option(help="The transferring office (移交单位)")],
    opinion: Annotated[str, typer.Option(help="Its opinion")],
    given_on: Annotated[str | None, typer.Option("--date", help="When it was given, YYYY-MM-DD")] = None,
) -> None:
    """Record the transferring office's opinion on a pending review (joint review, 联合审核)."""

    def body(settings: Settings) -> None:
        from archive import db, review

        with db.write_session(settings) as s:
            row = review.get_review(s, review_id)
            review.record_opinion(
                s, row, office=office, opinion=opinion, given_on=parse_date(given_on), actor=operator()
            )
        out.print(f"review #{review_id}: opinion of {office} recorded", highlight=False)

    run(body)


def records_edit(
    ref: Annotated[str, typer.Argument(help="ARCHIVE/CODE")],
    title: Annotated[str | None, typer.Option(help="题名")] = None,
    creator: Annotated[str | None, typer.Option(help="责任者")] = None,
    description: Annotated[str | None, typer.Option(help="摘要")] = None,
    keywords: Annotated[str | None, typer.Option(help="主题词, separated by ；or ;")] = None,
    date: Annotated[str | None, typer.Option(help="日期: YYYY, YYYY-MM, YYYY-MM-DD or start~end")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Edit a record's descriptive metadata: a new OCFL version of its metadata and an event."""

    def body(settings: Settings) -> None:
        from archive import describe, services

        archive_code, code = services.split_record_ref(ref)
        given = {"title": title, "creator": creator, "description": description, "keywords": keywords}
        changes = {k: v for k, v in {**given, "date": date}.items() if v is not None}
        result = describe.edit_metadata(settings, archive_code, code, changes, actor=operator())
        if as_json:
            print_json(result)
        else:
            out.print(f"{ref}: {result['version']} ({', '.join(result['changes'])})", highlight=False)

    run(body, as_json)


def records_history(
    ref: Annotated[str, typer.Argument(help="ARCHIVE/CODE")], as_json: JsonOpt = False
) -> None:
    """List the versions of a record's object: who, when, and what each metadata edit changed."""

    def body(settings: Settings) -> None:
        from archive import describe, services

        archive_code, code = services.split_record_ref(ref)
        history = describe.metadata_history(settings, archive_code, code)
        if as_json:
            print_json(history)
            return
        table = new_table("version", "created", "who", "what")
        for v in history["versions"]:
            what = ", ".join(v["changes"]) if v["changes"] else v["message"]
            table.add_row(v["version"], v["created"], v["who"] or "", what or "")
        out.print(table)

    run(body, as_json)


def register(app: typer.Typer) -> None:
    archives_app.command("policy")(archives_policy)
    access_app.command("redecide")(access_redecide)
    access_app.command("queue")(access_queue)
    access_app.command("review")(access_review)
    access_app.command("decide")(access_decide)
    access_app.command("opinion")(access_opinion)
    records_app.command("edit")(records_edit)
    records_app.command("history")(records_history)
