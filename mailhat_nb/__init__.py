"""mailhat_nb: diagnose mail connections, sync mailboxes, chart correspondence.

The package is the pure, testable core behind the notebooks; the widgets live
in :mod:`mailhat_nb.widgets` and are the only code that imports ipywidgets.
Dependencies point down this map only (``tests/test_layout.py`` pins the rules):

- :mod:`.widgets` -- the notebook panels (doctor, sync, correspondence, training);
- :mod:`.cli` and :mod:`.commands` -- the ``mailhat`` command, one module per subcommand;
- :mod:`.app` -- the notebooks' glue: parameters, the demo report, notebook hygiene;
- :mod:`.diagnose` -- the connection doctor: presets probed layer by layer, codes, verdict;
- :mod:`.discovery` -- from an address alone to the server to type, and why;
- :mod:`.sync` -- IMAP and mbox/Maildir sources, parsed headers, the Parquet store;
- :mod:`.analysis` -- the store as frames: identity, dedupe, contacts, charts, engines;
- :mod:`.contacts` -- the analysis under one name, for notebooks;
- :mod:`.lab` -- real mail and DNS servers on loopback, with switchable faults;
- :mod:`.errors`, :mod:`.checks`, :mod:`.secrets` -- the core (no third-party
  imports): the one exception tree, what a user types, where a password may go.
"""

__version__ = "0.1.0"
