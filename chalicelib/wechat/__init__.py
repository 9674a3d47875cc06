"""WeChat's server APIs: the clients that call them and what this service keeps of them.

- `client`: the HTTP client of WeChat's API (`jscode2session`, `getuserphonenumber`), wrapped like a
  careful SDK.
"""
