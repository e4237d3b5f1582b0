"""bkm: a backup-job manager for rsync and rclone (client side and shared vocabulary)."""

__version__ = "0.1.0"
