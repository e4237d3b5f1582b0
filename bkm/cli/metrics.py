"""bkm metrics: the Prometheus text exposition format, for node_exporter's textfile collector."""

from __future__ import annotations

import sys

import click


@click.command()
@click.pass_obj
def metrics(obj) -> None:
    """Print bkmd's metrics in the Prometheus text format (per job: last success, last run,
    its duration and bytes, running, stale, next run, runs by outcome; jobs by status).

    From cron, for node_exporter's textfile collector (write, then rename):

    \b
    cd /var/lib/node_exporter && bkm metrics > bkm.prom.$$ && mv bkm.prom.$$ bkm.prom
    """
    with obj.client() as client:
        sys.stdout.write(client.call("metrics.read")["text"])
