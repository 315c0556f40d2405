"""Drawing a job's pending figure when it is first downloaded (see :mod:`lifrnn.figure_recipes`).

:func:`draw_pending` fetches the figure's recipe from the object store, draws it, stores the PNG
in the content-addressed store, fills the artifact's ``sha256`` and ``size`` (a guarded update:
when two requests draw at once, both draw the same bytes and one update wins) and removes the
recipe blob once no row needs it. Any process that reaches the database and the object store can
draw any figure: the API server does, on the first download.
"""

from __future__ import annotations

import logging

from sqlalchemy import update
from sqlalchemy.orm import Session

from lifrnn.figure_recipes import render_recipe
from lifrnn.store import Artifact, Store
from lifrnn.store.cas import blob_key
from lifrnn.store.models import RECIPE_BLOB_NAME
from lifrnn.store.objects import ObjectNotFoundError

logger = logging.getLogger(__name__)


class FigureUnavailableError(Exception):
    """A pending figure whose recipe is missing from the object store."""


def draw_pending(store: Store, session: Session, artifact: Artifact) -> Artifact:
    """``artifact`` with its bytes stored: drawn now if it is a figure not drawn yet.

    Commits. Raises :class:`FigureUnavailableError` when its recipe has gone missing.
    """
    if not artifact.pending:
        return artifact
    recipe = artifact.recipe_sha256
    if recipe is None:
        raise FigureUnavailableError(f"figure {artifact.id} ({artifact.name}) has no recipe")
    recipe_blob = blob_key(recipe, RECIPE_BLOB_NAME)
    try:
        payload = store.objects.get_bytes(store.artifacts.key(recipe_blob))
    except ObjectNotFoundError:
        session.refresh(artifact)  # drawn by another request meanwhile, which removed the recipe
        if not artifact.pending:
            return artifact
        raise FigureUnavailableError(
            f"figure {artifact.id} ({artifact.name}): its recipe is missing from the object store"
        ) from None
    png = render_recipe(payload)
    session.rollback()  # a claim commits in a session of its own: hold no lock here meanwhile
    with store.writing() as blobs:
        digest, size = blobs.put_bytes(png, artifact.name)
        drawn = session.execute(
            update(Artifact)
            .where(Artifact.id == artifact.id, Artifact.sha256.is_(None))
            .values(sha256=digest, size=size, recipe_sha256=None)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
    if not drawn:  # drawn by another request meanwhile: these bytes may be named by nothing
        store.collect_blobs([blob_key(digest, artifact.name)])
    if drawn:
        logger.info("drew figure %s (%s, %d bytes)", artifact.id, artifact.name, size)
    store.collect_blobs([recipe_blob])
    session.refresh(artifact)
    return artifact
