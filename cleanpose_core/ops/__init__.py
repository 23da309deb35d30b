"""Point-cloud ops with the official PointNet++ CUDA semantics: `pointnet2_ops` kernels when importable (CUDA
tensors), the same loops compiled by numba on CPU (`cpu_kernels`), else vectorised PyTorch. Each op's module
also holds a slow reference twin (`*_naive`) for tests."""

from .ball_query import ball_queries, ball_queries_from_sqdist, ball_query, ball_query_from_sqdist
from .furthest_point_sample import NEAR_ORIGIN_SQ, furthest_point_sample
from .grouping import gather_points, group_points, index_points
from .knn import knn, square_distance
from .three_nn import inverse_distance_weights, three_interpolate, three_nn

__all__ = ["ball_query", "ball_queries", "ball_query_from_sqdist", "ball_queries_from_sqdist",
           "furthest_point_sample", "NEAR_ORIGIN_SQ", "gather_points", "group_points", "index_points", "knn",
           "square_distance", "three_nn", "three_interpolate", "inverse_distance_weights"]
