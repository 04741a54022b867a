"""Service-neutral "remote run" machinery, and the adapters that plug each service into it.

A remote run is anything Airflow starts elsewhere and waits for: submit it, read its
status (running / succeeded / failed, with a message), cancel it. ``base`` holds the one
poll/decide loop (sync for workers, async for triggers) and the event shape every wait ends
with; ``dune`` adapts Dune pipelines and executions to it. Operators, sensors and triggers
only ever talk to a :class:`~airflow_provider_dune.runs.base.RemoteRun`.
"""
