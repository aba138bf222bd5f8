"""Pure rules: keywords, phone numbers, consent state and coverage, the send policy, windows, GSM-7,
retries.

No I/O here: nothing in this package imports SQLAlchemy, Flask, Twilio or an HTTP client."""
