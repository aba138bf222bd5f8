"""Services: receive, decide, send, reconcile, review, erase: over the store."""
