"""Simulators: driving (the Waymax system) and dopant (Si dopant control in graphene)."""
