"""drift_exporter."""
