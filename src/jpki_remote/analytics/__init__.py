"""Municipal planning: expiry-wave forecast, counter-load (queueing) model, what-if, live statistics."""
