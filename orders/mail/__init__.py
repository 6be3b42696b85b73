"""The customers' mail: the outbox (every write to an order's notice state), the worker that
sends it, what comes back (bounces and complaints), its metrics and its deploy checks.
`Order` itself stays in `orders.models`."""
