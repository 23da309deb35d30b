"""Imported for its effect, before anything imports torch: OpenMP threads of the node processes sleep while
idle.

libgomp spin-waits between parallel regions by default when a process has no more OpenMP threads than cores.
On a robot the node shares the CPU with camera drivers and other nodes, and spinning threads then take the
cores from the threads they wait for: with the synthetic camera rendering beside the pose node, the demo's
mean latency was 6.8 s with the default and 0.7 s with PASSIVE (same machine, same frames). libgomp reads the
variable once, when torch loads it, so this must run first; a value the user set is kept.
"""

import os

WAIT_POLICY = "PASSIVE"
os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
