"""Monte Carlo validation suite: theory against simulation (THEORY.md section 6)."""
