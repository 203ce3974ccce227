"""Monitoring as code: Prometheus rules, Alertmanager routes, Grafana dashboards and their renderer.

The committed files under ``monitoring/`` are the single source; :mod:`monitoring.render` writes
the copy a given stack runs (its targets, secret files, external URLs and timing).
"""
