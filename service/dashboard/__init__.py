"""The instructors' dashboard: Jinja2 pages (with htmx for live rows) served by the FastAPI app under /dashboard."""
