"""The operator's toolkit: failed jobs, and the overview that ``workers``/``info`` print."""
