"""Sending outbound events (SPEC 10): one sender at a time holds a lease and POSTs what the
fold queued, recording every attempt as a fact."""
