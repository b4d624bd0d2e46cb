"""What the MongoDB backends (SHOPSITE_DB=mongodb | mongomock) need beyond settings.

django-mongodb-backend stores every auto primary key as an ObjectId, so
Django's contrib apps get AppConfigs that say so (apps.py) and their own
migrations (migrations/), selected by MIGRATION_MODULES in settings.py.
"""
