"""Faithful local emulators of the Partner Center and Salesforce APIs.

The sandboxes are an independent implementation of the behaviour documented in
`shared/specs/`: they import nothing from `cosell.partnercenter` or `cosell.salesforce`
(only the Salesforce metadata files, which are data), so a misreading of an API in a client
is caught by its contract tests against the sandbox, and the other way round.
"""
