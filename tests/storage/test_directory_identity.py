"""The directory's user lookup compares canonical identities on SQLite and PostgreSQL.

PostgreSQL's ``lower()`` folds Unicode: a row ``\\u212aim@acme.test`` (KELVIN SIGN), written
before the directory refused non-ASCII users, was found for ``kim@acme.test`` and made kim a
user of the org that wrote it (or, listed twice, of neither). SQLite's ``lower()`` folds ASCII
only, so the test runs on both (the ``database`` fixture).
"""

from __future__ import annotations

from ownkey.storage import Database, SqlOrgDirectory


def test_a_legacy_look_alike_row_is_no_ones_identity(database: Database) -> None:
    directory = SqlOrgDirectory(database)
    directory.create_org("acme")
    directory.create_org("globex")
    directory.put_users("acme", ["kim@acme.test", "Ann@Acme.test", "ann@acme.test"], licensed=False)
    # storage takes what it is given: these rows model data from before the identity rule
    directory.put_users("globex", ["\u212aim@acme.test", "\u212aIM@ACME.TEST"], licensed=False)
    assert directory.orgs_of_user("kim@acme.test") == ["acme"]
    assert directory.orgs_of_user("KIM@acme.test") == ["acme"]
    assert directory.orgs_of_user("ann@acme.test") == ["acme"]  # two spellings, one org
    assert directory.orgs_of_user("\u212aim@acme.test") == []  # no canonical form: no one
    assert directory.orgs_of_user("kim") == []
