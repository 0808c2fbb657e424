"""A local Spark Connect server for tests: `python tests/spark_connect_server.py PORT` starts Spark
local[1] with the Connect plugin on 127.0.0.1:PORT (token from SPARK_CONNECT_AUTHENTICATE_TOKEN),
prints 'ready' and serves until its stdin closes (the test module's teardown)."""

import sys

from pyspark.sql.connect.session import SparkSession as ConnectSession


def main(port: str) -> None:
    ConnectSession._start_connect_server(
        "local[1]",
        {
            "spark.connect.grpc.binding.port": port,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        },
    )
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1])
