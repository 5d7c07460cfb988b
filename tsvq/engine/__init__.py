"""The run engine under every recipe: one LightningModule (:mod:`.module`), one Trainer factory
(:mod:`.trainer`), the run directory (:mod:`.run_dir`), the optimiser (:mod:`.optim`) and the
evaluation passes (:mod:`.features`). Lightning is imported with the submodules that need it."""
