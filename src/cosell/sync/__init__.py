"""The sync: one reconcile pipeline, layered (imports point down; contract in pyproject.toml).

```
engine/  when and where: DBOS workflows over the started Engine, coalescing, leases, the inbox
         drainer, schedules, passes, the one backoff policy (config, backoff, workflows, core)
run/     the pipeline: reconcile (key -> link, single and batch, explain for `cosell plan`),
         creates (the missing side, exactly once), leads (Lead sync)
io/      both sides' I/O: read (1..200 keys), child_rows, Microsoft's notes, pollers, context
plan/    pure: rules, merge, deadlines, sets (collections), microsoft, notes_history, sides,
         audit, outcome, errors
```

One key: `engine.workflows.reconcile_key_workflow(key)` takes the key's lease and calls
`run.reconcile.reconcile_key`, which finds the key's link (none: `run.creates`),
reads both sides (`io.read`), decides (the merge against the base,
Microsoft's side, the collections, the notes history and the deadlines each add to the one
Decision), resolves the people it adds (`io.child_rows.resolve`), writes both sides (412: read
and decide again), records what was done in the store, and returns an `Outcome` (`plan.outcome`).
"""
