"""Data coming in as files: CSV validation and import."""
