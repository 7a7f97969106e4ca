"""A mini FLUX trained on a laptop CPU on rendered scenes with exact ground-truth edits."""
