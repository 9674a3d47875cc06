"""The tokens wxauth issues and checks.

- `access`: access tokens, RS256 JWTs per RFC 9068 (minted, and checked with the algorithm,
  `typ`, `iss`, `aud` and `exp` pinned), signed with the key set of chalicelib/signing_keys.py.
- `refresh`: opaque refresh tokens: their format, their hash (the only form stored), their MAC.
- `claims`: custom claims under `ext` (validated, stored on the user and copied to its
  sessions and identities) and the optional pre-token hook.
"""
