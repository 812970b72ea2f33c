"""Channel adapters: one small protocol (``channels.base``), an explicit registry
(``channels.registry``) and one module per adapter."""
