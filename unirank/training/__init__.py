"""Pieces of the training loop (:mod:`unirank.train`): config, data, batching, checkpoints, GradCache, export."""
