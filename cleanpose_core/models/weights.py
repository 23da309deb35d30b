"""Former home of the weight-file reader; everything here now lives in `cleanpose_core.io`.

Kept so that code written against 0.1.0 (`from cleanpose_core.models.weights import WeightsError`) still
imports; new code imports `cleanpose_core.io`.
"""

from __future__ import annotations

from ..io.artefacts import (WeightsError, load_state_dict_file, load_strict, read_weights_file, select_prefix,
                            strip_prefix, unwrap_state_dict)

__all__ = ["WeightsError", "read_weights_file", "unwrap_state_dict", "load_state_dict_file", "strip_prefix",
           "select_prefix", "load_strict"]
