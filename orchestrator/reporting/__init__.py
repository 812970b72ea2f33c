"""KPIs, and their terminal and HTML output."""
