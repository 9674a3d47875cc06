"""WeChat's server APIs: the clients that call them and what this service keeps of them.

- `client`: the HTTP client of WeChat's API (`jscode2session`, `stable_token`,
  `getuserphonenumber`), wrapped like a careful SDK.
- `broker`: the app's server access_token, one per appid for every container, in DynamoDB
  (a lease for the fetch, refresh ahead of expiry, bounded forced refreshes).
- `breaker`: a circuit breaker on `jscode2session` shared by every container, opened by the
  app's failure rate (-1, timeouts: `failure_rate`, sampled over every container), never by
  one user's 45011, so that an outage is not amplified by retries.
"""
