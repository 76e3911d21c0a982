"""Which tiles are the film (issue 19): a rival labelling's spread enters the ±.

Tile-level simulations with their truth: the tile means of a frame whose film is a faint
(transmission 0.945) hole edge in a corner, as on the 2048 × 2883 frame that read 2.3° on
an untilted specimen with a ± of 0.28° (seed 1796488195, frame 60), and readings of an
untilted specimen on which the film reads 100 Å less underfocus than the ice.
"""

import math

import numpy as np

from daskmic.tilt.angle import _rival_labelling, _rival_spread_deg
from daskmic.tilt.angle_fit import robust_plane
from daskmic.tilt.angle_regions import labellings

_PIXEL_A = 1.61
_BOOTSTRAP_ERR_DEG = 0.28  # the frame's own bootstrap ± (with the 0.15° floor)


def _faint_hole_edge(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tile centres (Å), mean counts and film fraction of a 2048 × 2883 frame's tiles.

    The beam passes 0.945 on the film (outside a circle of 3727 px about (3903, 3163) px)
    and a contamination particle (radius 346 px, soft edge) passes 0.56; tiles of 512 px
    at a step of 256 px, averaged with their Hann taper on a map of 16-px cells, and 0.4 %
    noise.
    """
    cell, tile = 16, 512 // 16
    yy, xx = np.mgrid[0 : 2048 // cell, 0 : 2883 // cell] * cell + cell / 2
    film = np.hypot(yy - 3903, xx - 3163) > 3727
    particle = np.clip((1.15 - np.hypot(yy - 1528, xx - 1472) / 346) / 0.3, 0, 1)
    transmission = np.where(film, 0.945, 1.0) * (1 - 0.44 * particle)
    taper = np.outer(np.hanning(tile + 1)[:-1], np.hanning(tile + 1)[:-1])
    step = tile // 2
    rows, cols = ((n - tile) // step + 1 for n in transmission.shape)
    means, xy, film_share = [], [], []
    for r in range(rows):
        for c in range(cols):
            window = (slice(r * step, r * step + tile), slice(c * step, c * step + tile))
            means.append((transmission[window] * taper).sum() / taper.sum())
            film_share.append(film[window].mean())
            xy.append(((c * step + tile / 2) * cell - 1441, (r * step + tile / 2) * cell - 1023))
    noise = 1 + 0.004 * np.random.default_rng(seed).standard_normal(len(means))
    return np.array(xy) * _PIXEL_A, np.array(means) * noise, np.array(film_share)


def test_a_rival_labelling_widens_the_error_of_an_ambiguous_film_edge():
    covered_before, covered_after = 0, 0
    for seed in range(20):
        xy, means, film_share = _faint_hole_edge(seed)
        labels, rival = labellings(xy, means)
        rng = np.random.default_rng(100 + seed)
        film_offset = -100.0 * np.clip((film_share - 0.1) / 0.8, 0.0, 1.0)
        local = 16000.0 + film_offset + 10.0 * rng.standard_normal(len(xy))
        plane = robust_plane(xy, local, labels)
        error_deg = math.degrees(math.atan(math.hypot(*plane.coef[1:3])))  # truth: 0°
        relabelled = _rival_labelling(xy, local, np.ones(len(xy), bool), labels, rival)
        spread_deg = _rival_spread_deg(relabelled[0], [relabelled[1]])[0] if relabelled else 0
        covered_before += error_deg <= 3 * _BOOTSTRAP_ERR_DEG
        covered_after += error_deg <= 3 * math.hypot(_BOOTSTRAP_ERR_DEG, spread_deg)
    # the brightness labels mix the film's corner into the ice on every draw (the defocus
    # reads 2.0-2.6° on the untilted specimen). The rival reading is near-tied on 9 of the
    # 20 draws and covers 8 of them; on the others the brightness clearly prefers the
    # wrong labels (a partial cover: see docs/tilt.md, "Which tiles are the film")
    assert covered_before == 0
    assert covered_after >= 8


def test_an_unambiguous_film_has_no_rival_spread():
    ys, xs = (np.arange(n) - (n - 1) / 2 for n in (9, 13))
    xy = np.array([(x * 256.0, y * 256.0) for y in ys for x in xs])
    x, y = xy[:, 0] / 1600.0, xy[:, 1] / 1100.0
    illumination = 1.0 + 0.1 * x - 0.05 * y - 0.04 * (x * x + y * y)
    film = xy[:, 0] + 0.5 * xy[:, 1] > 900.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        means = 12.0 * illumination * np.where(film, 0.87, 1.0)
        means *= 1 + 0.003 * rng.standard_normal(len(xy))
        labels, rival = labellings(xy, means)
        local = 15000.0 + 0.1 * xy[:, 0] - 0.05 * xy[:, 1] + np.where(film, 150.0, 0.0)
        local += 10.0 * rng.standard_normal(len(xy))
        np.testing.assert_array_equal(labels[film], 1)
        assert _rival_labelling(xy, local, np.ones(len(xy), bool), labels, rival) is None
