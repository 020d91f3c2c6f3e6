"""The reconcile pipeline: reconcile, batch, creates, Lead sync, record, explain."""
