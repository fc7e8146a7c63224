"""Using a trained classifier: loading checkpoints as data, clips and streams, segments over time."""
