"""BC -> Jira sync and the Jira -> BC write-back: extract, upsert, watermark, effects, the DAG factory."""
