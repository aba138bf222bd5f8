"""Operator commands: ``flask --app app <command>``."""
