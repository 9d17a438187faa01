"""The supervising master of a worker pool, its signal table and its configuration."""
