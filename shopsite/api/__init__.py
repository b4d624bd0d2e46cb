"""The REST API's description: OpenAPI 3.1 built from the models the views validate with."""
