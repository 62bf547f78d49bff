"""Writers turn simulated :class:`~vigile.simulate.flows.Flows` into files.

Each writer has ``write(flows, t0, t1)`` (called once per chunk of time, in order)
and ``close()``; one writer per output format, one file each.
"""
