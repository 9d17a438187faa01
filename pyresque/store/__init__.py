"""Redis: connection settings, every command and Lua script, the embedded dev server."""
