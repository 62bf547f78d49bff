"""Ports that tell a server's side of a flow from a client's, as Zeek tells them.

Zeek's analyzers register their ports as ``likely_server_ports``; a flow whose first
packet goes from one of them to a port that is not one is a reply, and Zeek takes
its receiver for the originator. The packet reader (:mod:`.packet.connstate`) flips
such flows, and so does the flow records' rows step for a lone reply
(:func:`vigile.ingest.pairhold.turn_replies`, rule in :mod:`.flowstate`).
"""

from __future__ import annotations

import numpy as np

#: Ports Zeek's analyzers register as likely server ports (subset of ``likely_server_ports``).
LIKELY_SERVER_PORTS = np.array(
    [
        *(21, 22, 23, 25, 53, 80, 88, 110, 123, 135, 137, 139, 143, 161, 389, 443, 445),
        *(465, 502, 514, 587, 623, 636, 853, 993, 995, 1080, 1194, 1433, 1812, 3128, 3306),
        *(3389, 3544, 5060, 5061, 5353, 5355, 5432, 5900, 6379, 6667, 8080, 8443, 9200),
    ]
)
#: True at the ports of :data:`LIKELY_SERVER_PORTS`: a look-up is one pass, ``np.isin`` sorts.
SERVER_PORT = np.zeros(65536, bool)
SERVER_PORT[LIKELY_SERVER_PORTS] = True
