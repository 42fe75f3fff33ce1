"""Real photographs as simulator textures (issue 16 item 5): atlas, sampling, scenes."""

from __future__ import annotations

import numpy as np
import pytest

from event_fm.sim import textures as T
from event_fm.sim.photos import (
    PHOTO_NAMES,
    PHOTO_SIZE,
    mip_chain,
    photo_atlas,
    photo_row,
    with_photo_textures,
)
from event_fm.sim.pipeline import SceneSimulator, SimConfig


def test_mip_chain_levels_keep_the_mean():
    rng = np.random.default_rng(0)
    image = rng.random((8, 8, 3)).astype(np.float32)
    chain = mip_chain(image)
    assert chain.shape == (64 + 16 + 4 + 1, 3)
    np.testing.assert_allclose(chain[-1], image.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(chain[64], image[:2, :2].reshape(-1, 3).mean(0), rtol=1e-5)
    with pytest.raises(ValueError, match="power-of-two"):
        mip_chain(np.zeros((6, 6, 3), np.float32))


def test_atlas_holds_every_bundled_photograph():
    atlas = photo_atlas()
    assert atlas.shape == (len(PHOTO_NAMES), (4 * PHOTO_SIZE ** 2 - 1) // 3, 3)
    finest = atlas[:, :PHOTO_SIZE ** 2].reshape(len(PHOTO_NAMES), PHOTO_SIZE, PHOTO_SIZE, 3)
    # real content: every photograph has texture (spread) and is not blank
    assert (finest.std(axis=(1, 2, 3)) > 0.03).all()
    assert 0.0 <= atlas.min() and atlas.max() <= 1.0


def test_sampling_reads_texels_when_sharp_and_the_mean_when_far():
    atlas = photo_atlas()
    k, tile = PHOTO_NAMES.index("chelsea"), 1.0
    finest = atlas[k, :PHOTO_SIZE ** 2].reshape(PHOTO_SIZE, PHOTO_SIZE, 3)
    row, col = 100, 40  # texel centre in metres: u right, v up (image rows down)
    u, v = (col + 0.5) / PHOTO_SIZE * tile, -(row + 0.5) / PHOTO_SIZE * tile
    sharp = T.sample_photo(atlas, k, u, v, tile, 1e-4)
    np.testing.assert_allclose(sharp, finest[row, col], atol=1e-5)
    far = T.sample_photo(atlas, k, u, v, tile, 100.0)
    np.testing.assert_allclose(far, atlas[k, -1], atol=1e-5)
    # mirrored tiling: the texel one tile to the right mirrors about the tile edge
    mirrored = T.sample_photo(atlas, k, 2 * tile - u, v, tile, 1e-4)
    np.testing.assert_allclose(mirrored, finest[row, col], atol=1e-5)
    # shading goes through the photo row (gain) and the atlas
    shaded = T.shade_texture(T.PHOTO, photo_row(k, tile, 0.5)[None], 0, u, v, 1e-4, atlas)
    np.testing.assert_allclose(shaded, 0.5 * finest[row, col], atol=1e-5)


def test_fraction_picks_surfaces_and_keeps_the_rest():
    tex = np.full(200, T.BRICK, np.int32)
    params = np.tile(T.texture_row((0.3, 0.2, 0.1)), (200, 1))
    sizes = np.full(200, 2.0)
    none_tex, none_params = with_photo_textures(tex, params, sizes, 0.0, np.random.default_rng(1))
    assert (none_tex == T.BRICK).all() and np.array_equal(none_params, params)
    half_tex, half_params = with_photo_textures(tex, params, sizes, 0.5, np.random.default_rng(1))
    picked = half_tex == T.PHOTO
    assert 70 < picked.sum() < 130
    assert np.array_equal(half_params[~picked], params[~picked])
    assert (half_params[picked, 6] >= 0.6 - 1e-9).all() and (half_params[picked, 6] <= 2.4).all()
    assert set(half_params[picked, 8].astype(int)) <= set(range(len(PHOTO_NAMES)))
    assert (tex == T.BRICK).all()  # inputs untouched
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        with_photo_textures(tex, params, sizes, 1.5, np.random.default_rng(1))


def test_photo_scene_changes_appearance_not_geometry():
    base = SceneSimulator(SimConfig(kind="tabletop", seed=3, width=96, height=72, duration=1.0))
    photo = SceneSimulator(SimConfig(kind="tabletop", seed=3, width=96, height=72, duration=1.0,
                                     photo_textures=1.0))
    assert (photo.scene.box_tex == T.PHOTO).all() and (photo.scene.ground_tex == T.PHOTO).all()
    a, b = base.renderer.render(0.3), photo.renderer.render(0.3)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.semantic, b.semantic)
    assert np.abs(a.rgb - b.rgb).mean() > 0.02
    assert photo.scene.summary()["photo_textures"] == 1.0
    # the seed reproduces the photographs
    again = SceneSimulator(SimConfig(kind="tabletop", seed=3, width=96, height=72, duration=1.0,
                                     photo_textures=1.0))
    np.testing.assert_array_equal(again.renderer.render(0.3).rgb, b.rgb)
    with pytest.raises(ValueError, match="photo_textures"):
        SimConfig(photo_textures=-0.1)
