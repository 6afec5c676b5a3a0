"""The read side: every read model is derived from the log by one deterministic fold.

Layers, each importing only those before it: `model` and `views` (the types), `rules/`
(pure derivations), `fold/` (facts applied to one batch's rows, behind a protocol),
`storage/` (tables, working set, prefetch, one module per SQL dialect), and on top
`runner` (follows the log), `replay` (rebuilds and compares) and `reader` (the queries).
"""
