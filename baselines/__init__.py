"""Single-file baselines (CleanRL style) on the envs of minmax_envs."""
