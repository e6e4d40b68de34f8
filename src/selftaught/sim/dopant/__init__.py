"""Si dopant transitions in graphene: simulator, recorded-experiment files, rate learning
(Poisson / kinetic Monte Carlo likelihood, bootstrap ensembles) and greedy control.

    lattice   graphene geometry, canonical frame, D3 symmetry group
    rates     ground-truth Gaussian-mixture rates, the human prior, symmetrisation
    sim       reset/step of one Si under the beam; the exploratory data-collection policy
    data      JSONL experiment files (documented there) with validation
    learn     MLP rate model, KMC loss, vmapped bootstrap ensemble, distillation
    control   greedy controller and random-beam baseline, episodes as one lax.scan
    metrics   rate-map error against the ground truth
"""
