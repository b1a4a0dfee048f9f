"""Analysis on top of the solvers: closed-form power-law asymptotics (:mod:`.asymptotics`),
the log-log rate checker (:mod:`.rates`) and theory-against-simulation checks (:mod:`.checks`)."""
