"""A release waits for shipping's cancellation: what inventory needs to remember for it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('inventory', '0004_reservation_allocated'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='reservation',
            name='payment_refunded',
        ),
        migrations.AddField(
            model_name='reservation',
            name='shipping_cancelled',
            field=models.BooleanField(db_column='shippingCancelled', default=False),
        ),
        migrations.AddField(
            model_name='reservation',
            name='release_requested_by',
            field=models.CharField(blank=True, db_column='releaseRequestedBy', default='', max_length=64),
        ),
    ]
