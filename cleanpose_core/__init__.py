"""CleanPose core: category-level 9DoF object pose from RGB-D, in pure Python + PyTorch.

Nothing in this package imports ROS; `cleanpose_ros` is the thin ROS 2 layer on top of it.
Conventions used everywhere (see DESIGN.md): column vectors; R maps the object frame to the
camera frame; camera optical frame x right / y down / z forward; metres and radians; quaternions (w, x, y, z);
shapes named B objects, N points, K keypoints, C channels, H, W pixels.
"""

__version__ = "0.1.0"

# The category tables, defined here only.
# Category names of the NOCS benchmarks (REAL275 / CAMERA25), 1-based in result files, index 0 = background.
NOCS_CATEGORIES = ("bottle", "bowl", "camera", "can", "laptop", "mug")
# HouseCat6D's ten categories, in the official 1-based order.
HOUSECAT6D_CATEGORIES = (
    "box",
    "bottle",
    "can",
    "cup",
    "remote",
    "teapot",
    "cutlery",
    "glass",
    "shoe",
    "tube",
)
# Rotationally symmetric about the object's y axis (a spin about it is unobservable), as the official
# training code treats them; a mug is not, because of its handle.
NOCS_SYMMETRIC = ("bottle", "bowl", "can")
HOUSECAT6D_SYMMETRIC = ("bottle", "can", "glass")
NOCS_SYMMETRIC_IDS = tuple(NOCS_CATEGORIES.index(c) for c in NOCS_SYMMETRIC)  # 0-based: (0, 1, 3)
HOUSECAT6D_SYMMETRIC_IDS = tuple(HOUSECAT6D_CATEGORIES.index(c) for c in HOUSECAT6D_SYMMETRIC)  # (1, 2, 7)
# The official HouseCat6D and CATRE evaluation code's one list, used for either benchmark: both sets together.
EVAL_SYMMETRIC = tuple(sorted(set(NOCS_SYMMETRIC) | set(HOUSECAT6D_SYMMETRIC)))  # bottle, bowl, can, glass
