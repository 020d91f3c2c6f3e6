"""The pure decision: rules, merge, deadlines, set merge, Microsoft's side, the sides' shape (no I/O)."""
