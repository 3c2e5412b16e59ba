"""How gunicorn serves the site: the same for `make run`, the Docker image, the browser tests and
the benchmarks (`gunicorn -c python:crm.gunicorn_conf crm.wsgi:application`).

One worker process per core, each answering one request at a time. A page costs Python CPU
time, mostly, and threads in one process share its GIL: with 2 workers of 4 threads on 2 cores,
8 clients kept every request waiting for the GIL about as long as it worked. On the 2-core
machine (`make bench-sales`, `make bench-api`; p95, the server's own time) one thread a worker
took the contact list from 82 to 17 ms, the board from 183 to 32 ms and an API lookup by
e-mail from 37 to 8 ms; the clients' times fell too (the list from 122 to 104 ms, the board
from 265 to 222 ms). More processes than cores, or two threads a worker, did worse on both.

The workers are gthread workers of one thread, not synchronous ones, though synchronous workers
showed the clients shorter waits (the list 62 ms, the board 127 ms: they take a connection only
when free, where a gthread worker takes it at once and queues it, even while the other worker
could answer it sooner). A synchronous worker waits for a request on a connection that sends
none (a browser opens some ahead of need) until gunicorn's timeout kills it, and is killed in
the middle of any answer longer than that timeout (a streamed export of a million contacts took
21 s on the quiet machine); a gthread worker keeps idle connections aside, and tells gunicorn it
is alive while it streams. WEB_CONCURRENCY sets
the number of workers.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
worker_class = "gthread"
threads = 1
