"""The JSON API for the scheduling system, one module a resource."""
