"""Graphene lattice geometry, the canonical frame and the D3 symmetry group.

Sites are integer triples (i, j, s): cell (i, j) of the honeycomb with lattice vectors
a1 = a(3/2, √3/2), a2 = a(3/2, −√3/2) and sublattice s (0 = A, 1 = B; B = A + (a, 0)),
bond length a = 1.42 Å. An A site's three neighbours lie at angles 0°, 120°, 240°; a B
site's at 180°, 300°, 60°.

Canonical frame (what rate models see): centred on the Si, rotated so that neighbour 0
lies along +x and neighbour k at angle 120°·k. For A sites it is the lab frame; for B sites
the lab frame rotated by 180°. A jump changes the sublattice, so the frame is
re-canonicalised after every jump.

Symmetry: the group D3 (three rotations by 120°·m, each optionally followed by the
reflection y → −y) maps the neighbours onto each other. Element g = (m, f) sends
neighbour k to `permutation(m, f)[k]` = ±(k + m) mod 3 (minus when reflected).
"""

from __future__ import annotations

from collections import deque

import jax.numpy as jnp
import numpy as np

BOND = 1.42  # Å, C–C bond length
_A1 = np.array([1.5 * BOND, np.sqrt(3) / 2 * BOND])
_A2 = np.array([1.5 * BOND, -np.sqrt(3) / 2 * BOND])
_B_OFFSET = np.array([BOND, 0.0])
# DELTA_2x3x2[s, k] = cell offset (di, dj) of neighbour k of a site on sublattice s.
DELTA_2x3x2 = np.array([[(0, 0), (0, -1), (-1, 0)], [(0, 0), (0, 1), (1, 0)]], dtype=np.int32)
# Canonical neighbour directions (unit bond length times BOND).
NEIGHBOURS_3x2 = BOND * np.array(
    [[np.cos(2 * np.pi * k / 3), np.sin(2 * np.pi * k / 3)] for k in range(3)]
)
# The 6 group elements (m, f) in a fixed order; element 0 is the identity.
GROUP = tuple((m, f) for f in (0, 1) for m in (0, 1, 2))


def site_position(ij, s):
    """Lab position (Å) of site (ij, s); works on NumPy and JAX arrays, batched."""
    ij = jnp.asarray(ij, dtype=jnp.float32)
    s = jnp.asarray(s, dtype=jnp.float32)
    return (
        ij[..., 0:1] * jnp.asarray(_A1, jnp.float32)
        + ij[..., 1:2] * jnp.asarray(_A2, jnp.float32)
        + s[..., None] * jnp.asarray(_B_OFFSET, jnp.float32)
    )


def neighbour_site(ij, s, k):
    """Site (ij', s') reached from (ij, s) by a jump to canonical neighbour k."""
    delta = jnp.asarray(DELTA_2x3x2)[s, k]
    return jnp.asarray(ij, jnp.int32) + delta, 1 - jnp.asarray(s, jnp.int32)


def frame_sign(s):
    """+1 on sublattice A, −1 on B: canonical = sign · lab (a rotation by 0° or 180°)."""
    return 1.0 - 2.0 * jnp.asarray(s, jnp.float32)


def to_canonical(vec_lab, s):
    """A lab-frame offset from the Si (…, 2) expressed in the Si's canonical frame."""
    return vec_lab * frame_sign(s)[..., None]


def to_lab(vec_canonical, s):
    """Inverse of `to_canonical` (the 180° rotation is its own inverse)."""
    return vec_canonical * frame_sign(s)[..., None]


def group_matrix(m: int, f: int) -> np.ndarray:
    """2x2 matrix of element (m, f): rotate by 120°·m, then reflect y → −y if f."""
    t = 2 * np.pi * m / 3
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    ref = np.diag([1.0, -1.0]) if f else np.eye(2)
    return ref @ rot


def permutation(m: int, f: int) -> np.ndarray:
    """perm[k] = index of the neighbour that neighbour k becomes under element (m, f)."""
    k = np.arange(3)
    return ((-(k + m)) if f else (k + m)) % 3


GROUP_MATRICES_6x2x2 = np.stack([group_matrix(m, f) for m, f in GROUP]).astype(np.float32)
GROUP_PERMS_6x3 = np.stack([permutation(m, f) for m, f in GROUP]).astype(np.int32)


def hop_distances(max_hops: int, start=((0, 0), 0)) -> dict[tuple[int, int, int], int]:
    """Graph distance (number of jumps) from `start` to every site within `max_hops`."""
    (i0, j0), s0 = start
    origin = (int(i0), int(j0), int(s0))
    dist = {origin: 0}
    queue = deque([origin])
    while queue:
        i, j, s = queue.popleft()
        if dist[(i, j, s)] >= max_hops:
            continue
        for di, dj in DELTA_2x3x2[s]:
            nxt = (i + int(di), j + int(dj), 1 - s)
            if nxt not in dist:
                dist[nxt] = dist[(i, j, s)] + 1
                queue.append(nxt)
    return dist


def sites_at_distance(hops: int) -> np.ndarray:
    """All sites exactly `hops` jumps from the origin A site, as an (n, 3) int array."""
    dist = hop_distances(hops)
    return np.array(sorted(k for k, d in dist.items() if d == hops), dtype=np.int32)
