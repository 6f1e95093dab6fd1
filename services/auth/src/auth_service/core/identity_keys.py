"""The one rule that decides when two usernames or emails are the same account.

Python's `str.lower()` and PostgreSQL's `lower()` disagree outside ASCII (`İ`, `ß`, fullwidth
letters), so an address stored by one and looked up by the other could register but never
log in. The key is computed here, in Python only, and stored beside the value it folds
(`users.email_key`, `users.username_key`); uniqueness and every look-up compare keys, and the
rate-limit and lockout counters are keyed by it too.

The rule: Unicode compatibility normalisation (NFKC: fullwidth `\uff41` is `a`), full case
folding (`ß` is `ss`, `İ` is `i̇`), then NFKC again (folding can denormalise). Changing it
changes which accounts collide: it needs a migration that re-keys every row.
"""

from __future__ import annotations

import unicodedata


def identity_key(value: str) -> str:
    """The comparison key of a username, an email address or a login identifier."""
    folded = unicodedata.normalize("NFKC", value.strip()).casefold()
    return unicodedata.normalize("NFKC", folded)


def is_email(identifier_key: str) -> bool:
    """Usernames cannot hold `@`, so a login identifier with one is an email address."""
    return "@" in identifier_key
