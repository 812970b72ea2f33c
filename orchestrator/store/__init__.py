"""The database: engine and migrations, tables, the account store, facts,
replay, group commit and bulk SQL helpers."""
