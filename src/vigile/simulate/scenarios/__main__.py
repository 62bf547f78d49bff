"""Print the scenario parameter table: ``python -m vigile.simulate.scenarios``."""

from vigile.simulate.scenarios import render_parameters

print(render_parameters(), end="")
