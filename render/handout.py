"""Which document a spec gets: the lecture's handout for the seed network (at any sizes), the
per-layer handout for every other network. One function, so that the build never asks which.
"""

from __future__ import annotations

from symbolic.spec import NetworkSpec


def make_document(spec: NetworkSpec, *, training=None, case=None, progress=None):
    """The document model of the handout for ``spec``.

    ``training`` (a ``symbolic.train.TrainResult``) adds the section on training; ``case`` (a case
    in ``eval``'s format, as a dict) replaces the worked example's numbers; ``progress`` is called
    with a short description before each long step (or None).

    >>> from symbolic.spec import load_spec
    >>> type(make_document(load_spec("part3"))).__name__
    'Document'
    """
    from render.document import seed_sizes

    if seed_sizes(spec) is not None:
        from render.lecture import seed_document

        return seed_document(spec, training=training, case=case, progress=progress)
    from render.network_doc import build_document

    return build_document(spec, case=case, progress=progress)
