"""PostgreSQL: a partial index of the outbox's pending rows, for the relay's every round.

On PostgreSQL the (dispatched, id) index keeps an entry for each row that
was ever pending until vacuum removes it, so the planner scanned the whole
outbox (every row sent in the last OUTBOX_RETENTION_HOURS) on each relay
round. This index holds the rows the relay looks for, and no others. Not
part of the models' state: SQLite and MongoDB keep what they have.
"""

from django.db import migrations

CREATE = ('CREATE INDEX IF NOT EXISTS outbox_pending_rows ON outbox (_id) '
          'WHERE NOT dispatched AND "parkedAt" IS NULL')
DROP = "DROP INDEX IF EXISTS outbox_pending_rows"


def _on_postgresql(sql: str):
    def run(apps, schema_editor) -> None:  # noqa: ANN001, ARG001 - a RunPython function
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0002_outbox_parked_at'),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP), hints={"model_name": "outboxmessage"}),
    ]
