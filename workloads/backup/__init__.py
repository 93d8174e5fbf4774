"""Backups of the platform's stores: what the backup CronJobs and the restore Jobs run in the
workloads image (upload, retention, encryption, metrics; fetching a backup back).

The dumps themselves are taken and restored by shell scripts in the servers' own images
(infra/backup/), so pg_dump and redis-cli always match the server.
"""
