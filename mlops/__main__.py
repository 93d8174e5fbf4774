"""`python -m mlops`: the same command as the `mlops` console script."""

from mlops.cli import main

main()
