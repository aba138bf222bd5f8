"""The store: tables, sessions, the outboxes, pacing, send locks. The only code that builds SQL."""
