"""Training: the official CleanPose recipe and our CPU recipe, with exact resume and torchrun support.

- `config.py`: `TrainConfig` (sources and per-source batch mix, optimiser, schedule, iterations, seed, ...);
- `schedules.py`: CyclicLR triangular 2e-5..5e-4 stepped per iteration;
- `loader.py`: endless, resumable per-source batch streams with per-sample seeding;
- `engine.py`: one iteration (mixed-source loss, non-finite stop, FIFO queue push);
- `trainer.py`: wiring and the loop (progress bar, TensorBoard, checkpoints); `components.py`: `Components`
  (what a run is made of) and the real model, loss and readers;
- checkpoints, model files and the other artefacts are written and read by `cleanpose_core.io`, which
  inference and segmentation use too (running a model does not need this package);
- `distributed.py`: torchrun environment, rank-0-only output, sharded sampling;
- `teacher.py`, `queue_init.py`, `feature_cache.py`: teacher pre-training / ULIP-2 import, initial queue,
  optional cached teacher features;
- `classification.py`: the small point-cloud classification loop of the teachers and the point classifier;
- `maskrcnn.py`, `maskrcnn_data.py`: the Mask R-CNN segmenter's training and its NOCS-format samples;
  `point_classifier.py`: the point classifier's (the networks are in `models/`, the segmenters that run them
  in `segmentation/`);
- `cli.py`: `cleanpose train`, `teacher`, `queue-init`, `train-seg`, `train-classifier`.
"""
