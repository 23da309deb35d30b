"""Data: NOCS-format (CAMERA25, REAL275, synthetic) and HouseCat6D readers and the per-instance pipeline.

Modules:
- `instance`: frame + mask -> network input (crop window, point choice, back-projection, RGB crop); shared by
  the training readers and `cleanpose_core.inference`;
- `depth_completion`: IP-Basic `fill_missing`, run on every frame as the official readers do;
- `augment`: colour augmentation and point noise from an explicit generator;
- `sampling`: epoch draws and per-sample generators as functions of (seed, epoch, index) (exact resume);
- `files`: per-file readers that fail with a reason (`SampleError`);
- `samples`: training-sample targets (symmetry, qo, pc_mask), test-image batches, skip counting;
- `nocs`, `housecat6d`: the dataset readers; `synthetic/`: the synthetic data engine.
"""
