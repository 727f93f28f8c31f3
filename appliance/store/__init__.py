"""Durable letter state: the store (hot tinydb + dated archive + outbox), its crash-safe
files, group commit, the spool of letter PDFs, and the journal every append-only file
uses."""
