"""The sync: one reconcile pipeline, layered (imports point down; contract in pyproject.toml).

```
engine/  when and where: DBOS workflows bound to the started Engine (workflows), leases,
         coalescing, the inbox drainer, schedules, passes (core), the one backoff (backoff)
run/     the pipeline: reconcile (one key), batch (up to 200 keys, the same stages), pipeline
         (both, for the engine), creates (the missing side, exactly once), leads (Lead sync),
         park, record, explain (`cosell plan`)
io/      I/O: read (both sides, 1..200 keys), links (key -> link), child_rows, microsoft's
         notes, pollers, context (clients, store, clock)
plan/    pure: keys, decide (one Decision), merge, rules, deadlines, sets (collections),
         microsoft, notes_history, creates, leads, record (what a decision leaves in the
         store), limits, sides, audit, outcome, errors
```

One key: `engine.workflows.reconcile_key_workflow(key)` leases the key and calls
`run.reconcile.reconcile_key`: `plan.keys.KeyRef.parse(key)` -> `io.links.link_of` (no link:
`run.creates`) -> `io.read` both sides -> `plan.decide.decide` (the merge against the base,
Microsoft's side, the collections, the notes history and the deadlines all add to the one
Decision) -> `io.child_rows.resolve` (ids of the people it adds) -> write Partner Center, then
Salesforce (a 412: read and decide again) -> `run.record.record(plan.record.record_of(...))`:
snapshot, conflicts, audit, wake-up and link in ONE store transaction (a batch: one for all
its keys) -> the `Outcome`. A problem for that deal parks it (`run.park`, the only way).
"""
