"""A database that vanishes from the network: no FIN, no reset, its packets dropped.

PostgreSQL runs in a network namespace the test makes (a host of its own, reached over a
veth pair); `iptables -j DROP` inside it black-holes every packet to it, as a host that dies
or a cut cable does, and removing the rule brings the route back. `make serve` runs in front
of it as in production.
"""

import os
import re
import subprocess
import time
from datetime import UTC, datetime
from unittest import skipIf, skipUnless

import pytest
from django.db import connection
from django.test import SimpleTestCase

from orders.tests.smtp import free_port
from R4C.tests import postgres
from R4C.tests.service import call, order, post_robot, serve_on
from R4C.tests.world import wait_for

pytestmark = pytest.mark.slow

NAMESPACE = f"r4c-db-{os.getpid()}"
# The test's own host and its side of the link: a /30 of a namespace made here, nothing else.
HOST_SIDE, DB_SIDE = "10.231.77.1", "10.231.77.2"


def sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces and iptables need root"
    if not (os.path.exists("/usr/sbin/iptables") or os.path.exists("/sbin/iptables")):
        return "iptables is not installed (make tools installs it)"
    return postgres.missing()


@skipUnless(connection.vendor == "postgresql", "run with the PostgreSQL tier")
@skipIf(why_not() and not os.environ.get("CI"), why_not() or "")
class PartitionTests(SimpleTestCase):
    def setUp(self):
        sh("ip", "netns", "add", NAMESPACE)
        self.addCleanup(sh, "ip", "netns", "delete", NAMESPACE)
        veth = f"r4c{os.getpid() % 100000}"
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "db0", "netns", NAMESPACE)
        sh("ip", "addr", "add", f"{HOST_SIDE}/30", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        inside = ("ip", "netns", "exec", NAMESPACE)
        sh(*inside, "ip", "addr", "add", f"{DB_SIDE}/30", "dev", "db0")
        sh(*inside, "ip", "link", "set", "db0", "up")
        sh(*inside, "ip", "link", "set", "lo", "up")

        self.database = postgres.Server(DB_SIDE, free_port(), namespace=NAMESPACE)
        self.addCleanup(self.database.close)
        self.database.init()
        self.database.start()
        self.database.sql("CREATE DATABASE r4c")
        self.url = f"postgres://postgres@{DB_SIDE}:{self.database.port}/r4c"

        self.service, self.mailbox = serve_on(self, self.url)
        self.key = self.service.key
        self.inside = inside

    def test_a_database_that_vanishes_is_noticed_within_10_s_and_found_again(self):
        port = self.service.port
        self.assertEqual(post_robot(port, "R2-D2", self.key)[0], 201)
        self.assertTrue(wait_for(lambda: "listening for due notices" in self.service.output()))
        self.assertEqual(order(port, "before@example.com", "R2-D2")[0], 201)
        self.assertTrue(wait_for(lambda: self.mailbox.recipients() == ["before@example.com"]))

        sh(
            *self.inside, "iptables", "-A", "INPUT", "-j", "DROP"
        )  # every packet to the database host is dropped, none refused
        cut, cut_at = time.monotonic(), datetime.now(UTC)
        # A request meets it: it is answered, a 503, not held until TCP gives up.
        status, headers, _ = post_robot(port, "R2-D2", self.key)
        answered = time.monotonic() - cut
        self.assertEqual(status, 503)
        self.assertEqual(headers["Retry-After"], "5")
        self.assertLess(answered, 15)  # the health check's 6 s, then connecting's 5 s
        # The worker notices within 10 s.
        failed = re.compile(r"^(\S+) .*the notice worker's watcher failed", re.MULTILINE)
        self.assertTrue(wait_for(lambda: failed.search(self.service.output()), 15))
        noticed = datetime.fromisoformat(failed.search(self.service.output()).group(1))
        detected = (noticed - cut_at).total_seconds()
        self.assertLess(detected, 10)

        sh(*self.inside, "iptables", "-D", "INPUT", "-j", "DROP")  # the route is back
        back = datetime.now(UTC)
        listening = re.compile(r"^(\S+) .*listening for due notices", re.MULTILINE)
        self.assertTrue(
            wait_for(
                lambda: any(
                    datetime.fromisoformat(t) > back
                    for t in listening.findall(self.service.output())
                ),
                20,
            )
        )
        self.assertTrue(wait_for(lambda: call(port, "GET", "/healthz")[0] == 200, 20))
        self.assertEqual(order(port, "after@example.com", "13-XS")[0], 201)
        self.assertEqual(post_robot(port, "13-XS", self.key)[0], 201)
        self.assertTrue(wait_for(lambda: "after@example.com" in self.mailbox.recipients()))
        print(
            f"\npartition: a request answered 503 {answered:.1f} s after the cut; the worker "
            f"noticed it {detected:.1f} s after"
        )
