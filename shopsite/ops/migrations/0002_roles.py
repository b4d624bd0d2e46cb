"""The three roles as groups with their permissions (shopsite/ops/permissions.py).

Permissions are normally created after all migrations (post_migrate); they are
created here first so the groups can hold them. Runs only where the router puts
Django's own tables (`default`), on every backend.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "viewers": ["ops.view_orders"],
    "operators": ["ops.view_orders", "ops.operate", "ops.place_orders", "ops.view_apitoken"],
    "storefront": ["ops.place_orders"],
}


def create_roles(apps, schema_editor):
    alias = schema_editor.connection.alias
    ops = apps.get_app_config("ops")
    ops.models_module = True  # create_permissions skips app configs without models
    create_permissions(ops, verbosity=0, using=alias, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, names in GROUPS.items():
        group, _ = Group.objects.using(alias).get_or_create(name=name)
        for dotted in names:
            app_label, codename = dotted.split(".")
            permission = Permission.objects.using(alias).get(content_type__app_label=app_label, codename=codename)
            group.permissions.add(permission)


def drop_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0001_initial"),
        ("auth", "__latest__"),
        ("contenttypes", "__latest__"),
    ]

    operations = [migrations.RunPython(create_roles, drop_roles)]
