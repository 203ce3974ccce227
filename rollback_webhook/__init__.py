"""rollback_webhook: Alertmanager receiver that authenticates, decides, rolls back and records."""
