"""The fold: every fact, in log order, applied to the rows of one batch (`state.Batch`).

`dispatch.fold_facts` is the entry point; each step is a module of functions that take the
batch state. Where the rows live (a SQL working set, memory) is behind `state.Rows`.
"""
