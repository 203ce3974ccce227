"""rollback_webhook."""
