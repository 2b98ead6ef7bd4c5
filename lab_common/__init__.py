"""Code both services share: settings base, logging, request metrics, fault injection, app factory."""
