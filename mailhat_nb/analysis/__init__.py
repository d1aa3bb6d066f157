"""Correspondence analysis: the store as frames, who is "you", and what the mail says.

Everything here takes and returns pandas frames (no hidden state), built on
the ``messages`` frame of :mod:`.frames`:

- :mod:`.load` -- a store, a Maildir tree or an mbox file as the ``messages``
  frame, with ``direction`` (the rule for "you" applied);
- :mod:`.frames` -- the frame's columns and dtypes;
- :mod:`.addresses` -- address columns, vectorised;
- :mod:`.identity` -- who is "self" (and why), contacts per domain;
- :mod:`.aliases` -- addresses that are one person, merged when accepted;
- :mod:`.dedupe` -- the duplicate rule: one message counts once;
- :mod:`.metrics` -- contacts, volume, activity, response times;
- :mod:`.health` -- how complete and clean the data is, per folder;
- :mod:`.charts` -- matplotlib figures of the above;
- :mod:`.export` -- CSV, Parquet and JSON records.

Notebooks import the functions through one name, :mod:`mailhat_nb.contacts`.
The storage layer (:mod:`mailhat_nb.sync`) never imports this package.
"""
