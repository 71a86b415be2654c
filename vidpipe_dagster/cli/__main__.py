"""`python -m vidpipe_dagster.cli`: the `vidpipe` command."""

from vidpipe_dagster.cli import main

main()
