"""Status-polling throughput against a running emulator (not a test; run it by hand).

    dune-emulator --port 8089 --api-key bench --execution-seconds 0 &
    EID=$(curl -s -X POST -H 'X-Dune-Api-Key: bench' http://127.0.0.1:8089/api/v1/query/1003/execute \
          | python -c 'import json,sys; print(json.load(sys.stdin)["execution_id"])')
    python tests/emulator/bench_status.py --path /v1/execution/$EID/status
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp


async def measure(url: str, key: str, seconds: float, concurrency: int) -> tuple[int, int, float]:
    ok = other = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"X-Dune-Api-Key": key}) as session:

        async def worker() -> None:
            nonlocal ok, other
            while time.monotonic() < deadline:
                async with session.get(url) as response:
                    await response.read()
                    if response.status == 200:
                        ok += 1
                    else:
                        other += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, other, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8089/api")
    parser.add_argument("--api-key", default="bench")
    parser.add_argument("--path", required=True, help="e.g. /v1/execution/<id>/status")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    url = args.base_url + args.path
    ok, other, elapsed = asyncio.run(measure(url, args.api_key, args.seconds, args.concurrency))
    rate = ok / elapsed
    print(f"{rate:.0f} req/s ({ok} ok, {other} other) over {elapsed:.1f}s, {args.concurrency} connections")


if __name__ == "__main__":
    main()
