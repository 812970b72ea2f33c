"""outreach: compliant debt-collection outreach (planner, gate, decision log)."""

__version__ = "0.1.0"
