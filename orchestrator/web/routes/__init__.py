"""One ``APIRouter`` per concern; ``orchestrator.web.app.create_app`` includes them all.
A route translates between HTTP and a service (``orchestrator.web.services``): it reads
the request, calls the service, and turns its answer or refusal into a response."""
