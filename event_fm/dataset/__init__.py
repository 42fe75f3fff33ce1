"""Training samples from recordings: the sample assembly shared by the offline dataset builder and
the live recorder (``sync``), the crash-safe shard format (``shards``) and reading it back
(``shard_dataset``). Core layer: no rclpy, no training module."""
