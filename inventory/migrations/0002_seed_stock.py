"""A fresh system has SKU-1 ... SKU-10 with 1000 units each (CONTRACT.md)."""

from datetime import datetime, timezone

from django.db import migrations

SEED_SKUS = [f"SKU-{n}" for n in range(1, 11)]
SEED_UNITS = 1000


def seed_stock(apps, schema_editor):
    Stock = apps.get_model("inventory", "Stock")
    alias = schema_editor.connection.alias
    now = datetime.now(timezone.utc)
    existing = set(Stock.objects.using(alias).values_list("sku", flat=True))
    Stock.objects.using(alias).bulk_create(
        [Stock(sku=sku, available=SEED_UNITS, reserved=0, updated_at=now) for sku in SEED_SKUS if sku not in existing]
    )


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]
    operations = [migrations.RunPython(seed_stock, migrations.RunPython.noop)]
