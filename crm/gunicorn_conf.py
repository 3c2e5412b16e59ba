"""How gunicorn serves the site: the same for `make run`, the Docker image, the browser tests and
the benchmarks (`gunicorn -c python:crm.gunicorn_conf crm.wsgi:application`).

One synchronous worker process per core, each answering one request at a time. A page costs
Python CPU time, mostly, and threads in one process share its GIL: with 2 workers of 4 threads
on 2 cores, 8 clients kept every request waiting for the GIL about as long as it worked. The
same load measured on the 2-core machine (`make bench-sales` and `make bench-api`, p95):

- Django's own time per page fell 3 to 5 times: the contact list from 82 to 17 ms, the 360°
  page from 112 to 27 ms, the board from 183 to 32 ms, an API lookup by e-mail from 37 to 8 ms.
- What the clients saw (including the wait in the socket queue) fell too: the list from 122 to
  70 ms, the board from 265 to 131 ms, an API page of contacts from 194 to 86 ms.
- More processes than cores (3 or 4) or gthread workers of one thread each (which take in
  requests while busy and queue them inside) did worse on both sides.

A worker answering a slow request holds its slot, so a public deployment puts a buffering proxy
in front, as for any synchronous gunicorn worker. WEB_CONCURRENCY sets the number of workers and
WEB_TIMEOUT how long a request may take: longer than gunicorn's 30 s default, for a streamed CSV
export of a million contacts takes about 21 s on a quiet 2-core machine.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)))
worker_class = "sync"
timeout = int(os.environ.get("WEB_TIMEOUT") or 120)
