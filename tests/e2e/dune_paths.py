"""The emulator's request paths the end-to-end suites count (its request log records paths)."""

EXECUTE_PIPELINE = "/api/v1/pipelines/execute"
EXECUTE_QUERY_PREFIX = "/api/v1/query/"  # POST /v1/query/{id}/execute
EXECUTE_SQL = "/api/v1/sql/execute"
MAIA_START_SUFFIX = "/pipeline-executions"


def pipeline_status(pipeline_id: str) -> str:
    return f"/api/v1/pipelines/executions/{pipeline_id}/status"


def execution_status(execution_id: str) -> str:
    return f"/api/v1/execution/{execution_id}/status"
