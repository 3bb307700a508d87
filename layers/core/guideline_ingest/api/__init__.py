"""The HTTP API: one resolver factory, the routes, and RFC 9457 problems."""
