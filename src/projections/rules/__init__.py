"""Pure derivations: Stripe snapshots, ownership, documents and sentences, from rows to rows.

Nothing here reads a store, a clock or the environment; the fold (`projections.fold`)
decides when each rule applies.
"""
