"""The prediction log's writer: a process of its own that builds the records of a batch,
encodes them as Parquet and uploads them, so that none of it holds the serving process's GIL.

    python -m workloads.monitoring.log_writer --fd <socket> --uri s3://bucket/prefix

The transformer's `PredictionLogger` keeps its bounded queue and counters in process and hands
each batch to `WriterProcess.write`, which sends it over a private socket pair (pickled: the
peer is this module, started by the transformer itself) and waits for the outcome. A writer
that dies or stops answering is replaced: its batch counts as a sink error, the next batch
goes to a new process. The writer reads the S3 endpoint and credentials from the environment
it inherits (the standard AWS variables).
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection

from workloads.monitoring.log_store import LogLocation, S3Sink
from workloads.monitoring.prediction_log import SINK_ERROR, Chunk, write_batch

log = logging.getLogger(__name__)

# Longer than an upload can take (the S3 client's timeouts and retries), so only a stuck
# writer is replaced.
REPLY_SECONDS = 120.0


class WriterProcess:
    """Writes batches through a child process, started on first use and again after it dies."""

    def __init__(self, uri: str, reply_seconds: float = REPLY_SECONDS) -> None:
        LogLocation.parse(uri)
        self.uri = uri
        self.reply_seconds = reply_seconds
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None

    def _start(self) -> Connection:
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workloads.monitoring.log_writer",
                f"--fd={theirs.fileno()}",
                f"--uri={self.uri}",
            ],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._connection = Connection(ours.detach())
        return self._connection

    def write(self, model_name: str, batch: list[Chunk]) -> str:
        with self._lock:
            connection = self._connection or self._start()
            try:
                connection.send((model_name, batch))
                if connection.poll(self.reply_seconds):
                    return str(connection.recv())
                log.warning("prediction log: the writer took over %.0f s", self.reply_seconds)
            except (EOFError, OSError) as error:
                log.warning("prediction log: the writer is gone (%s); starting another", error)
            self._stop()
            return SINK_ERROR

    def _stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._process is not None:
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._stop()
                self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


def serve(connection: Connection, uri: str) -> None:
    """Writes each batch it receives and answers with its outcome, until the peer closes."""
    sink = S3Sink(LogLocation.parse(uri))
    while True:
        try:
            model_name, batch = connection.recv()
        except EOFError:
            return
        connection.send(write_batch(sink, model_name, batch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--uri", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(Connection(args.fd), args.uri)


if __name__ == "__main__":
    main()
