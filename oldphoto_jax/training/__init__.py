"""Training: discriminators' losses, per-stage pure train steps, and the trainer loop."""
