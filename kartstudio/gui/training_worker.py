"""The training job the Training tab runs on a BackgroundTask: the real Trainer, its progress
callbacks turned into queued events ("batch", "epoch", "checkpoint") for the UI thread."""

from __future__ import annotations

from pathlib import Path


def make_training_job(config: dict):
    """(job, holder): job(report, cancelled) trains; holder["trainer"] is the Trainer once it exists,
    so Cancel can reach it (Trainer.cancel() stops within one batch)."""
    holder: dict = {}

    def job(report, cancelled):
        from kartstudio.training.trainer import TrainConfig, Trainer  # TensorFlow loads here, off the UI thread

        def on_batch(p) -> None:
            report("batch", {
                "epoch": p.epoch - 1,
                "batch": p.batch - 1,
                "batches": p.batches,
                "fraction": p.batch / max(1, p.batches),
                "loss": p.loss,
                "samples_per_s": p.samples_per_s,
                "eta_s": p.eta_s,
                "total_batches": p.epochs * p.batches,
                "done_batches": (p.epoch - 1) * p.batches + p.batch,
            })

        def on_epoch(p) -> None:
            report("epoch", {"epoch": p.epoch - 1, "loss": p.loss, "val_loss": p.val_loss,
                             "samples_per_s": p.samples_per_s, "eta_s": p.eta_s})
            report("checkpoint", f"epoch {p.epoch}: {Path(p.checkpoint).parent.name}/{Path(p.checkpoint).name}"
                                 f"{'  (best so far)' if p.improved else ''}  loss {p.loss:.4f}"
                                 + (f"  val {p.val_loss:.4f}" if p.val_loss is not None else ""))

        trainer = Trainer(
            TrainConfig(
                epochs=config["epochs"], batch_size=config["batch_size"], learning_rate=config["learning_rate"],
                loss=config["loss"], augment=config["augment"], val_sessions=config["val_sessions"],
            ),
            on_batch=on_batch,
            on_epoch=on_epoch,
        )
        holder["trainer"] = trainer
        if cancelled.is_set():
            trainer.cancel()
        return trainer.fit(config["sessions"], config["output"])

    return job, holder
