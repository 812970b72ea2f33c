"""The decision core: accounts, state, rules, planner, gate, limits, hours,
zones, phones, decision records, inbound keywords, links, the PII cipher. Pure: no
database, web, CLI or file I/O (tests/test_layers.py keeps it so)."""
