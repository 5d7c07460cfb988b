"""Runs ``tsvq train`` / ``tsvq prior`` in this process and, with ``--kill-at STEP --signal NAME``,
sends the signal to itself after that optimiser step (SIGKILL: the process dies at once; SIGINT:
Lightning's graceful shutdown). Used by test_fault_injection.py as a subprocess."""
import argparse
import os
import signal
import sys

import torch


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--signal", default="SIGKILL")
    args, rest = parser.parse_known_args()
    torch.set_num_threads(1)
    # A process started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then keeps it ignored: restore the KeyboardInterrupt that Ctrl+C gives a user.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.kill_at is not None:
        import lightning.pytorch as pl

        import tsvq.engine.trainer as trainer_module

        class Kill(pl.Callback):
            def on_train_batch_end(self, trainer, *_):
                if trainer.global_step == args.kill_at:
                    os.kill(os.getpid(), getattr(signal, args.signal))

        make = trainer_module.make_trainer

        def make_with_kill(*a, **k):
            trainer = make(*a, **k)
            trainer.callbacks.append(Kill())
            return trainer

        trainer_module.make_trainer = make_with_kill
        import tsvq.recipes.prior
        import tsvq.recipes.stage1  # noqa: F401  (they import make_trainer inside their functions)
    from tsvq.cli.main import main as cli

    return cli(rest + ["--no-progress"])


if __name__ == "__main__":
    sys.exit(main())
