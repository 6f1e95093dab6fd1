"""SQL for each table, and nothing else."""
