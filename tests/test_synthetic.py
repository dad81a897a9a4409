"""The embedded default data: deterministic, with exact labels, and nuclei that touch."""

import numpy as np
from scipy import ndimage

from unetkit.instances import InstanceConfig, probabilities_to_instances
from unetkit.synthetic import make_em_image, make_nuclei_image
from unetkit.weights import separation_borders


def test_em_image_is_deterministic_with_isbi_style_labels():
    a, b = make_em_image((96, 128), seed=3), make_em_image((96, 128), seed=3)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.dtype == np.uint8 and a.image.shape == (96, 128)
    assert set(np.unique(a.labels)) == {0, 255}
    assert 0.75 < (a.labels == 255).mean() < 0.95  # thin membranes, like ISBI's ~0.78 cell fraction
    # membranes are darker than cells: the labels describe the image
    assert a.image[a.labels == 0].mean() < a.image[a.labels == 255].mean() - 30
    assert not np.array_equal(a.image, make_em_image((96, 128), seed=4).image)


def test_nuclei_touch_and_labels_are_exact():
    s = make_nuclei_image((256, 256), seed=1)
    ids = np.unique(s.instances[s.instances > 0])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))  # consecutive 1..N
    assert len(ids) > 15
    touching = separation_borders(s.instances).sum()
    assert touching > 20  # several nuclei share a contact line
    # plain components of the foreground merge touching nuclei: the case the weight map is for
    n_components = ndimage.label(s.instances > 0)[0].max()
    assert n_components < len(ids)
    # the exact instances, given as a perfect prediction with carved borders, are recovered
    carved = (s.instances > 0) & ~separation_borders(s.instances)
    pred = probabilities_to_instances(carved.astype(np.float32), config=InstanceConfig(min_size=0, fill_holes=False))
    assert pred.max() >= len(ids) - 2
    assert s.image.dtype == np.uint16
    assert s.image[s.instances > 0].mean() > 2 * s.image[s.instances == 0].mean()
