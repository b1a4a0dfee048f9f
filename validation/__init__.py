"""Monte Carlo validation suite: theory against simulation (``docs/theory.md`` §9)."""
