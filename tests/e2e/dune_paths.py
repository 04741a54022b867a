"""The emulator's request paths the end-to-end suites count (its request log records paths)."""

EXECUTE_PIPELINE = "/api/v1/pipelines/execute"
EXECUTE_SQL = "/api/v1/sql/execute"
MAIA_START_SUFFIX = "/pipeline-executions"


def pipeline_status(pipeline_id: str) -> str:
    return f"/api/v1/pipelines/executions/{pipeline_id}/status"
