"""What the server's requests do, as plain functions over a ``Server``: each checks a
request, writes it in one transaction, and says what happened, or refuses it
(``refusals``) having written nothing. The routes (``orchestrator.web.routes``) only
translate between HTTP and these, so tests can call them without a server."""
