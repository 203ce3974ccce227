"""Prediction service: serves the production version of a registered model, counted and logged."""
