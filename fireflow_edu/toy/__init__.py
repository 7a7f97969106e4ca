"""The 2D Gaussian-mixture rectified flow of the paper's Figure 2: mixtures, MLP, training, metrics."""
