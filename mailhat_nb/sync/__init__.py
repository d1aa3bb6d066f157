"""Mailbox sync: message sources -> parsed ``messages`` rows -> the store.

Modules (each documents its own API):

- :mod:`.parse` -- header blocks into rows, fast and never raising
  (helpers :mod:`.rfc2047`, :mod:`.addrparse`, :mod:`.dates`);
- :mod:`.offline` -- the same rows from a Maildir tree or an mbox file;
- the IMAP source and the Parquet store live beside them (their own modules).

The frame built from the rows is specified in :mod:`mailhat_nb.frames`.
"""
