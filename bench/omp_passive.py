"""Imported by the benchmarks before torch: idle OpenMP threads sleep, as in the pose node
(cleanpose_ros/openmp_policy.py).

With libgomp's default spinning, a frame of the Estimator took 2-6 s instead of ~0.1 s whenever other
processes kept both cores of the 2-core machine busy (issue 21): figures on a shared machine meant nothing.
`OMP_WAIT_POLICY=ACTIVE python bench/...` measures the spinning default; the result files record the policy.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
