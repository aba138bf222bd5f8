"""Pure rules: keywords, phone numbers, the send policy, windows, GSM-7, retries, consent coverage.

No I/O here: nothing in this package imports SQLAlchemy, Flask, Twilio or an HTTP client."""
