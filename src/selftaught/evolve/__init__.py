"""Program search: programs as typed DAGs, functional hashing, regularized evolution,
NSGA-II, a GNN discriminator for guided evolution, evaluation backends, and domains
(symbolic regression, RL loss functions)."""
