"""Training: discriminators' losses, per-task pure train steps, and the trainer loop."""
