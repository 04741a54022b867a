"""One way to start a real Airflow, for the end-to-end tests and the benchmarks.

* :mod:`harness.deployment`: :func:`~harness.deployment.airflow_deployment` and the two
  shapes, ``LOCAL`` (SQLite, LocalExecutor, one triggerer) and ``DISTRIBUTED`` (PostgreSQL,
  Celery with Redis, two triggerers): how every component is started, read and stopped.
* :mod:`harness.servers`: PostgreSQL and Redis servers from pip packages.
* :mod:`harness.processes`: process groups and trees, their CPU.
"""
