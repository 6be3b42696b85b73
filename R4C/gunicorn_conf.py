"""gunicorn's settings for `make serve`: its processes, and its error and access logs through
R4C's LOGGING."""

import copy
import os

from R4C.settings import DATABASES, LOGGING

# Threads that wait on the database release the GIL. On SQLite one process: its threads take
# turns for the database's one write lock (R4C/sqlite3), where the threads of two processes
# would meet in SQLite's own sleep-and-retry loop and a request could wait a second for it.
worker_class = "gthread"
sqlite = DATABASES["default"]["ENGINE"] == "R4C.sqlite3"
workers = int(os.environ.get("WEB_WORKERS") or (1 if sqlite else 2))
threads = int(os.environ.get("WEB_THREADS") or 8)

# A copy: logging.config.dictConfig consumes the dict it is given, and Django configures
# each worker process from LOGGING after gunicorn has configured the master from this.
logconfig_dict = copy.deepcopy(LOGGING)
# No time of its own: the formatter gives every line the one time format. The client as
# X-Forwarded-For names it: gunicorn listens on a socket behind make serve's nginx.
access_log_format = '%({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
