"""The sync engine: pure merge and plan, business rules, reconcile workflows, wiring.

```
merge.py      the pure three-way merge: both sides' canonical values + base -> Plan
rules.py      Partner Center's rules, checked before anything is planned (refusals, holds)
deadlines.py  Partner Center's clocks: the expiry warning, held changes, when to wake a key
context.py    SyncContext (clients, store, mapping, clock, dry run, failpoints); build_context
sides.py      reading both sides: the referral (eTag), the opportunity + account (one SOQL)
reconcile.py  reconcile_key / reconcile_batch / sweep_page / explain: read, merge, write with
              If-Match / If-Unmodified-Since, re-merge on 412, record base, audit, status
creates.py    the missing side, exactly once: referrals from opportunities (create intents,
              recovery by externalReferenceId), opportunities from incoming referrals (upsert)
audit.py      audit messages and the bounded, newest-first Audit__c
microsoft.py  Microsoft's side of an engagement (its key resolves to ours): status and MSX id
              to the opportunity, its notes as ContentNotes, audit lines
notes_history.py  each change of the Partner Center notes kept as a ContentNote, once
outcome.py    Outcome: what one reconcile of one key did
errors.py     SyncError and what each subclass asks the engine to do
pollers.py    change sources: the Partner Center and Salesforce pollers, the sweep's keys
engine.py     DBOS workflows around the reconcile: queue per key, retries, schedules
```
"""
