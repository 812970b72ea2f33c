"""Configuration: typed models, loading and validation (file:line errors), the
environment's settings."""
