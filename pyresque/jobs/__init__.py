"""A job and its class: running perform with hooks, safe class resolution, policies."""
