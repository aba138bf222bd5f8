"""The web edge: Twilio's webhooks, the JSON API, the staff console, health and metrics."""
