"""What the benchmarks share, one module a concern.

`machine`  the machine, CPU time from /proc, waiting for quiet, other load
`source`   which code runs (the working tree or an exported revision)
`stores`   fresh stores, a quiet PostgreSQL, row counts
`facts`    generated Stripe facts in a store
`catchup`  the read+decode baseline, catch-up and replay, each in a child process
`compare`  catch-up A/B of code revisions on one data set
`webhooks` signed Stripe deliveries as raw requests
`load`     wrk at full speed and an open-loop client at a fixed rate
`run`      what every entry point prints and keeps around its measurements
"""
