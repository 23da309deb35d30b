"""Saving and loading artefacts: weight files, model files, training checkpoints, queues and caches.

- `artefacts.py`: the format tags of our files (`FORMATS`), `atomic_save` / `save_artefact`, the safe
  reader `read_weights_file` (``weights_only=True``) and `read_artefact` (reader + format check), the one
  error class `WeightsError`, state-dict helpers for foreign checkpoints (`load_strict`, `unwrap_state_dict`,
  ...) and our model state without frozen foreign weights (`trainable_state_dict` /
  `load_trainable_state_dict`);
- `checkpoint.py`: training checkpoints that continue a run bit for bit (RNG states included);
- `pose_model.py`: `load_pose_model`, the trained CleanPose network of a model file or checkpoint.

Each artefact's own loader stays beside the code that runs it (`segmentation.maskrcnn.load_maskrcnn` and
`segmentation.rescoring.load_point_classifier` beside their segmenters, since their networks in `models/` may
not read configs; `train.teacher.load_teacher`, ...) and reads through `read_artefact`, so every one of them
fails with a `WeightsError` that names the file.

Import directions (test/test_import_directions.py): `artefacts` and `checkpoint` import nothing of the
project, so `models` may use them; `pose_model` builds a network and so sits above `models`, which is why it
is not imported here.
"""

from . import artefacts, checkpoint
from .artefacts import (CHECKPOINT_FORMAT, CLASSIFIER_FORMAT, FEATURE_CACHE_FORMAT, FORMATS, MASKRCNN_FORMAT,
                        MODEL_FORMAT, QUEUE_FORMAT, TEACHER_FORMAT, ArtefactFormat, WeightsError,
                        WeightsNotFoundError, atomic_save, check_format, describe_contents, frozen_prefixes,
                        load_state_dict_file, load_strict, load_trainable_state_dict, read_artefact,
                        read_weights_file, save_artefact, select_prefix, strip_prefix, trainable_state_dict,
                        unwrap_state_dict)
from .checkpoint import (CHECKPOINT_KEYS, CheckpointError, capture_rng_state, load_checkpoint,
                         restore_rng_state, save_checkpoint)

__all__ = artefacts.__all__ + checkpoint.__all__
