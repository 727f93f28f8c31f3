"""Management information: the journal of device events, the submission ledger (intent
before POST, proof after), the service that builds and submits daily MI, its settings."""
