"""Small deterministic sample tables shaped like Dune's spellbook tables.

Generated with integer arithmetic only (no RNG, no hash functions) so the rows are identical
on every machine and DuckDB version, which keeps test expectations stable.
"""

from __future__ import annotations

TABLE_STATEMENTS: tuple[str, ...] = (
    "CREATE SCHEMA IF NOT EXISTS dex",
    "CREATE SCHEMA IF NOT EXISTS ethereum",
    """
    CREATE OR REPLACE TABLE ethereum.blocks AS
    SELECT
        CAST(19000000 + i AS BIGINT) AS number,
        TIMESTAMP '2024-01-01 00:00:00' + to_seconds(CAST(i * 720 AS BIGINT)) AS time,
        '0x' || lpad(format('{:x}', (i * 2654435761) % 4294967296), 64, '0') AS hash,
        CAST(12000000 + (i * 7919) % 18000000 AS BIGINT) AS gas_used,
        CAST(10 + (i * 37) % 90 AS BIGINT) * 1000000000 AS base_fee_per_gas,
        '0x' || lpad(format('{:x}', 4096 + (i % 12)), 40, '0') AS miner
    FROM range(360) AS t(i)
    """,
    """
    CREATE OR REPLACE TABLE dex.trades AS
    SELECT
        'ethereum' AS blockchain,
        ['uniswap', 'sushiswap', 'curve', 'balancer', 'pancakeswap'][1 + (i % 5)] AS project,
        CAST(1 + (i % 3) AS VARCHAR) AS version,
        CAST(b.time AS DATE) AS block_date,
        b.time AS block_time,
        b.number AS block_number,
        ['WETH', 'USDC', 'USDT', 'DAI', 'WBTC'][1 + ((i * 3) % 5)] AS token_bought_symbol,
        ['USDC', 'WETH', 'DAI', 'USDT', 'LINK'][1 + ((i * 7) % 5)] AS token_sold_symbol,
        round(CAST(10 + (i * 7919) % 250000 AS DOUBLE) / 10, 2) AS amount_usd,
        '0x' || lpad(format('{:x}', (i * 40503) % 4294967296), 64, '0') AS tx_hash
    FROM range(600) AS t(i)
    JOIN ethereum.blocks AS b ON b.number = 19000000 + (i % 360)
    ORDER BY block_time, i
    """,
)
