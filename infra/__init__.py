"""The mlops-platform Pulumi program."""
