"""The web room: ``pyresque web``'s HTTP API, its docs page and the Prometheus ``/metrics``.

Only this room imports the ``pyresque[web]`` extra (the ASGI framework, uvicorn,
prometheus-client); everything it serves comes from the same library functions the CLI uses.
"""
