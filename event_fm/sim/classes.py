"""Semantic classes of the synthetic data: the 11 DSEC-Semantic classes, so that simulated
labels train and evaluate the same heads as the real DSEC data.

Ids 0-10 are classes, 255 marks pixels without a label (never produced by the renderer, but
reserved so that losses can share ``ignore_index`` with real datasets).
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "background", "building", "fence", "person", "pole", "road", "sidewalk", "vegetation",
    "car", "wall", "traffic sign",
)

BACKGROUND, BUILDING, FENCE, PERSON, POLE, ROAD, SIDEWALK, VEGETATION, CAR, WALL, SIGN = range(11)
IGNORE = 255
NUM_CLASSES = len(CLASS_NAMES)

#: Cityscapes-style display colours (the palette DSEC-Semantic uses), one RGB triple per id.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (70, 70, 70), (190, 153, 153), (220, 20, 60), (153, 153, 153), (128, 64, 128),
    (244, 35, 232), (107, 142, 35), (0, 0, 142), (102, 102, 156), (220, 220, 0),
)

#: Classes whose objects may move on their own in the generated scenes.
DYNAMIC_CLASSES = frozenset({PERSON, CAR})


def colorize(labels):
    """Label image (H, W) -> RGB uint8 (H, W, 3) for viewing; ids without a class (255 =
    ignore) show as black. The one palette of the project: node outputs, plots, sim previews."""
    import numpy as np

    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[:NUM_CLASSES] = np.asarray(CLASS_COLORS, dtype=np.uint8)
    return palette[np.asarray(labels, dtype=np.uint8)]
