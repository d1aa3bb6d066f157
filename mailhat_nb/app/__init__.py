"""The notebooks' glue: their parameters, the demo report, notebook hygiene.

- :mod:`.params` -- what the notebooks share: parameters, where the password
  comes from, the working connection handed from the doctor to the sync;
- :mod:`.demo` -- ``mailhat report`` / ``make demo``: every notebook executed
  against the lab and rendered to HTML with an index;
- :mod:`.nbclean` -- no outputs, widget state or secret in a saved notebook.
"""
