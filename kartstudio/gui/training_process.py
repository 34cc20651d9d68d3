"""The training child process the Training tab starts (see kartstudio.gui.training_worker).

stdin: one JSON line with the job (training_worker.TrainingJob), then optionally "cancel".
stdout: one JSON event per line. No Qt here; TensorFlow lives only in this process.
"""

from __future__ import annotations

import json
import sys
import threading


def main() -> int:
    out = sys.stdout
    lock = threading.Lock()

    def emit(kind: str, payload=None) -> None:
        with lock:
            out.write(json.dumps({"kind": kind, "payload": payload}) + "\n")
            out.flush()

    sys.stdout = sys.stderr  # anything a library prints must not corrupt the event stream
    line = sys.stdin.readline()
    from kartstudio.errors import describe_error
    from kartstudio.gui.training_worker import TrainingJob, batch_event, epoch_events, make_trainer, result_summary

    def on_epoch(p) -> None:
        for kind, payload in epoch_events(p):
            emit(kind, payload)

    try:
        job = TrainingJob.from_json(line)
        trainer = make_trainer(job, lambda p: emit("batch", batch_event(p)), on_epoch)
    except BaseException as exc:  # noqa: BLE001 - reported to the window
        emit("error", describe_error(exc))
        return 2

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "cancel":
                trainer.cancel()
        trainer.cancel()  # the window went away: stop, keeping the last checkpoint

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        result = trainer.fit(list(job.sessions), job.output)
    except BaseException as exc:  # noqa: BLE001
        emit("error", describe_error(exc))
        return 2
    emit("done", result_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
