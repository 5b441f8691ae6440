"""Two-stage DPO + LoRA training for the RPS study: data builder (`rps_train.data`) and trainer
(`rps_train.train`). Needs the `[train]` extra; the scoring core (`rps_evals`) does not."""

__all__ = ["data", "train"]
