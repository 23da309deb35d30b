"""Training: the official CleanPose recipe and our CPU recipe, with exact resume and torchrun support.

- `config.py`: `TrainConfig` (sources and per-source batch mix, optimiser, schedule, iterations, seed, ...);
- `schedules.py`: CyclicLR triangular 2e-5..5e-4 stepped per iteration;
- `loader.py`: endless, resumable per-source batch streams with per-sample seeding;
- `engine.py`: one iteration (mixed-source loss, non-finite stop, FIFO queue push);
- `trainer.py`: wiring and the loop (progress bar, TensorBoard, checkpoints); `components.py`: the real
  model, loss and readers;
- `checkpoint.py`: atomic checkpoints holding everything needed to continue bit for bit;
- `distributed.py`: torchrun environment, rank-0-only output, sharded sampling;
- `teacher.py`, `queue_init.py`, `feature_cache.py`: teacher pre-training / ULIP-2 import, initial queue,
  optional cached teacher features;
- `cli.py`: `cleanpose train`, `cleanpose teacher`, `cleanpose queue-init`.
"""
