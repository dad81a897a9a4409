"""A napari plugin: open images, segment them, paint a few strokes, train on the CPU, look, fix, train again.

Registered through the ``napari.manifest`` entry point (``napari.yaml`` in
this folder). Everything that imports napari or Qt lives in the modules of
this sub-package and is imported by napari only when a contribution is used;
``unetkit`` itself and its command line never import them. Needs the
``napari`` extra.
"""
