"""Where the read models live: tables, the working set of a batch, and one module per store
dialect (`sqlite`, `postgresql`) holding every SQL difference between the two."""
