"""`model_overrides` that shrink the lite preset to seconds per training run (imported by the train tests).

Every module of the network stays (image backbone, PointNet++, IAKD, GAFA, front door + queue, heads, KD head
and teacher); only widths and counts shrink. Objects need at least 32 points (the first FPS level).
"""

TINY = {
    "image": {"image_size": 32, "input_size": 32, "out_dim": 16},
    "points": {"npoints": [32, 16, 8, 4], "nsamples": [[4, 8], [4, 8], [4, 8], [4, 8]],
               "sa_mlps": [[[4, 8], [4, 8]], [[8, 8], [8, 8]], [[8, 16], [8, 16]], [[16, 16], [16, 16]]],
               "fp_mlps": [[16, 16], [16, 16], [16, 16], [32, 32]]},
    "iakd": {"kpt_num": 8, "query_dim": 32,
             "attn": {"block_num": 1, "d_model": 32, "num_heads": 2, "dim_ffn": 32}},
    "gafa": {"k_list": [4, 8], "d_model": 32, "pos_hidden": 8},
    "nocs": {"bins_num": 16, "hidden": 32,
             "attn": {"block_num": 1, "d_model": 32, "num_heads": 2, "dim_ffn": 32}},
    "head_hidden": 32,
    "pts_per_kpt": 2,
    "causal": {"front_door": {"feat_dim": 32, "cross_attn": {"block_num": 1, "d_model": 32, "num_heads": 2,
                                                             "dim_ffn": 32},
                              "self_attn": {"block_num": 1, "d_model": 32, "num_heads": 2, "dim_ffn": 32}},
               "queue": {"length": 6, "sample_num": 3, "init": "random"}},  # no queue_init file needed
    "kd": {"teacher": {"trans_dim": 16, "depth": 2, "num_heads": 2, "group_size": 8, "num_group": 8,
                       "encoder_dims": 16, "drop_path_rate": 0.5}},
}


