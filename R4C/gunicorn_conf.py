"""gunicorn's settings for `make serve`: its processes, and its error and access logs through
R4C's LOGGING."""

import copy

from R4C.settings import LOGGING, WEB_THREADS, WEB_WORKERS

worker_class, workers, threads = "gthread", WEB_WORKERS, WEB_THREADS
# Longer than nginx keeps an idle connection to it (deploy/nginx-site.conf: 1 s), so that
# nginx, not gunicorn, closes it: never under a request nginx is sending.
keepalive = 5

# A copy: logging.config.dictConfig consumes the dict it is given, and Django configures
# each worker process from LOGGING after gunicorn has configured the master from this.
logconfig_dict = copy.deepcopy(LOGGING)
# No time of its own: the formatter gives every line the one time format. The client as
# X-Forwarded-For names it: gunicorn listens on a socket behind make serve's nginx.
access_log_format = '%({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
