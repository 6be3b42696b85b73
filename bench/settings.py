"""The product's settings, with the benchmark's reference views beside its URLs."""

from R4C.settings import *

ROOT_URLCONF = "bench.urls"
