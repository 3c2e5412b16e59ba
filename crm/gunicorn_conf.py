"""How gunicorn serves the site: the same for `make run`, the Docker image, the browser tests and
the benchmarks (`gunicorn -c python:crm.gunicorn_conf crm.wsgi:application`).

One worker process per core, each with one thread and one connection at a time. A page costs
Python CPU time, mostly, and threads in one process share its GIL: with 2 workers of 4 threads
on 2 cores, 8 clients kept every request waiting for the GIL about as long as it worked. On the
2-core machine (`make bench-sales`, `make bench-api`; p95, the server's own time) one thread a
worker took the contact list from 82 to 20 ms, the board from 183 to 35 ms and an API lookup by
e-mail from 37 to 8 ms; the clients' times fell too (the list from 122 to 83 ms, the board from
265 to 146 ms). More processes than cores, or two threads a worker, did worse on both.

One connection at a time (`worker_connections = 1`, so no keep-alive) leaves the connections
waiting in the socket's queue, where whichever worker is free next takes the oldest. A worker
taking every connection as it comes queued some behind its own work while the other worker sat
idle: the clients waited longer (the board 193 to 232 ms), and a run of bulk upserts lost up to
a sixth of its rate at the end, when one worker still had calls queued and the other had none.

These are gthread workers, not synchronous ones, which also answer one connection at a time: a
synchronous worker waits on a connection that sends nothing (a browser opens some ahead of need)
until gunicorn's timeout kills it, and is killed in the middle of any answer longer than that
timeout (a streamed export of a million contacts took 21 s on the quiet machine). A gthread
worker waits 5 s for a silent connection's request (the worker answers nothing else meanwhile)
and then closes it, and tells gunicorn it is alive while it streams. WEB_CONCURRENCY sets the
number of workers.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
worker_class = "gthread"
threads = 1
worker_connections = 1
keepalive = 0
